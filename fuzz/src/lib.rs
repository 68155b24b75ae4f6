//! Shared by the fuzz targets and the seed generator.

pub mod api;
