//! The storage port's contract suite (`ibyok::store::contract`) against the
//! DynamoDB adapter on the local AWS-protocol server. The same cases run
//! against the memory store in the `ibyok-shared` unit tests.

ibyok::store_contract_tests!(ibyok_tests::fresh_subject());
