//! Where `ibyok login` keeps a person's session token, one per vault (its
//! URL, so that a token is never sent to another vault than the one that
//! issued it), and where the other commands find it when no token is given
//! (`--token` and `IBYOK_TOKEN` keep winning):
//!
//! - the OS's keyring where it has one that needs no D-Bus or desktop: the
//!   kernel's keyutils on Linux (the user's persistent keyring, which
//!   outlives a login session for a few days, never a reboot), the Keychain
//!   on macOS, the Credential Manager on Windows;
//! - else, or when the keyring fails (a container that forbids `keyctl`),
//!   or with `IBYOK_KEYRING=off`, a file readable by its user only:
//!   `$XDG_CONFIG_HOME/ibyok/session`, else `~/.config/ibyok/session`
//!   (`%APPDATA%\ibyok\session` on Windows), a JSON object of URL → token,
//!   in a folder of mode 0700 and a file of mode 0600.

use crate::client::CliError;
use ibyok::api::Redacted;
use ibyok::secret::TokenSecret;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The keyring entries' service name (the user name is the vault's URL).
pub const SERVICE: &str = "ibyok";

/// Where a session is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Keyring,
    File(PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Keyring => f.write_str(KEYRING_NAME),
            Place::File(path) => write!(f, "{} (mode 0600)", path.display()),
        }
    }
}

#[cfg(target_os = "linux")]
const KEYRING_NAME: &str = "the kernel keyring";
#[cfg(target_os = "macos")]
const KEYRING_NAME: &str = "the macOS Keychain";
#[cfg(target_os = "windows")]
const KEYRING_NAME: &str = "the Windows Credential Manager";
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
const KEYRING_NAME: &str = "the keyring";

/// A store of secrets by name: the OS's keyring, or a stand-in in tests.
pub trait Keyring {
    /// The token kept for `vault`; `None` when there is none.
    fn get(&self, vault: &str) -> Result<Option<TokenSecret>, String>;
    fn set(&self, vault: &str, token: &TokenSecret) -> Result<(), String>;
    /// Whether there was one to delete.
    fn delete(&self, vault: &str) -> Result<bool, String>;
}

/// The OS's keyring, through the `keyring` crate.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
struct OsKeyring;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
impl Keyring for OsKeyring {
    fn get(&self, vault: &str) -> Result<Option<TokenSecret>, String> {
        let entry = keyring::Entry::new(SERVICE, vault).map_err(|e| e.to_string())?;
        match entry.get_password() {
            Ok(token) => Ok(Some(TokenSecret::new(token))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn set(&self, vault: &str, token: &TokenSecret) -> Result<(), String> {
        // keyutils can take a key it cannot give back (a container whose
        // user namespace maps the persistent keyring to another user): the
        // key would stay in the kernel, out of reach. A harmless probe
        // proves the round trip before the token goes in.
        #[cfg(target_os = "linux")]
        {
            let failed = |e: keyring::Error| format!("it does not give back a test entry: {e}");
            let probe = keyring::Entry::new(SERVICE, "probe").map_err(failed)?;
            probe.set_password("probe").map_err(failed)?;
            let back = probe.get_password().map_err(failed)?;
            probe.delete_credential().map_err(failed)?;
            if back != "probe" {
                return Err("the keyring gave back another value".into());
            }
        }
        let entry = keyring::Entry::new(SERVICE, vault).map_err(|e| e.to_string())?;
        entry.set_password(token.expose_token()).map_err(|e| e.to_string())?;
        let back = entry.get_password().map(Redacted::from);
        if back.is_ok_and(|b| ibyok::signin::same(b.expose(), token.expose_token())) {
            return Ok(());
        }
        let _ = entry.delete_credential();
        Err("the keyring did not give the session back".into())
    }

    fn delete(&self, vault: &str) -> Result<bool, String> {
        let entry = keyring::Entry::new(SERVICE, vault).map_err(|e| e.to_string())?;
        match entry.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The sessions of this user: the keyring (if any), then the file (if a
/// config folder is known).
pub struct Sessions {
    keyring: Option<Box<dyn Keyring>>,
    file: Option<PathBuf>,
}

/// A vault's URL as a key: without a trailing `/`, as the client sends to it.
fn vault(url: &str) -> &str {
    url.trim_end_matches('/')
}

impl Sessions {
    /// The OS's keyring (unless `IBYOK_KEYRING=off`) and the file in the
    /// user's config folder.
    pub fn from_env() -> Self {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let keyring_off = std::env::var("IBYOK_KEYRING").is_ok_and(|v| v.eq_ignore_ascii_case("off"));
        let config = if cfg!(windows) {
            env("APPDATA")
        } else {
            env("XDG_CONFIG_HOME").filter(|p| p.is_absolute()).or_else(|| env("HOME").map(|h| h.join(".config")))
        };
        Self::new(if keyring_off { None } else { os_keyring() }, config.map(|c| c.join("ibyok").join("session")))
    }

    pub fn new(keyring: Option<Box<dyn Keyring>>, file: Option<PathBuf>) -> Self {
        Self { keyring, file }
    }

    /// The session kept for `url`: the keyring's, else the file's. A
    /// keyring that fails is passed over (the file may hold the session
    /// then); a file that cannot be read is an error.
    pub fn load(&self, url: &str) -> Result<Option<TokenSecret>, CliError> {
        if let Some(Ok(Some(token))) = self.keyring.as_ref().map(|k| k.get(vault(url))) {
            return Ok(Some(token));
        }
        match &self.file {
            Some(path) => Ok(read_file(path)?.remove(vault(url))),
            None => Ok(None),
        }
    }

    /// Keeps `token` as the session for `url`: in the keyring, else in the
    /// file (and no other copy of an earlier one is left behind). Answers
    /// where it went, and why not the keyring if it failed.
    pub fn save(&self, url: &str, token: &TokenSecret) -> Result<(Place, Option<String>), CliError> {
        let keyring_failed = match &self.keyring {
            Some(k) => match k.set(vault(url), token) {
                Ok(()) => {
                    // An older session in the file would otherwise be found
                    // when the keyring is not (another login session).
                    if let Some(path) = &self.file {
                        let _ = remove_from_file(path, vault(url));
                    }
                    return Ok((Place::Keyring, None));
                }
                Err(e) => Some(e),
            },
            None => None,
        };
        if let Some(k) = &self.keyring {
            // An older session there would be found before this one.
            let _ = k.delete(vault(url));
        }
        let path = self.file.as_ref().ok_or("no place to keep the session: set HOME or XDG_CONFIG_HOME")?;
        let mut sessions = read_file(path)?;
        sessions.insert(vault(url).to_owned(), token.clone());
        write_file(path, &sessions)?;
        Ok((Place::File(path.clone()), keyring_failed))
    }

    /// Forgets the session for `url` wherever it is kept; answers where it
    /// was.
    pub fn remove(&self, url: &str) -> Result<Vec<Place>, CliError> {
        let mut was = Vec::new();
        if let Some(Ok(true)) = self.keyring.as_ref().map(|k| k.delete(vault(url))) {
            was.push(Place::Keyring);
        }
        if let Some(path) = &self.file {
            if remove_from_file(path, vault(url))? {
                was.push(Place::File(path.clone()));
            }
        }
        Ok(was)
    }
}

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
fn os_keyring() -> Option<Box<dyn Keyring>> {
    Some(Box::new(OsKeyring))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn os_keyring() -> Option<Box<dyn Keyring>> {
    None
}

/// The file's sessions; none when it does not exist.
fn read_file(path: &Path) -> Result<BTreeMap<String, TokenSecret>, CliError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut buf = Redacted::with_capacity(1024);
    std::io::copy(&mut file, &mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.expose().iter().all(u8::is_ascii_whitespace) {
        return Ok(BTreeMap::new());
    }
    serde_json::from_slice(buf.expose())
        .map_err(|_| format!("{} is not a session file (JSON of URL to token); remove it", path.display()))
}

/// The sessions as JSON, each token exposed into the zeroizing buffer only.
struct FileBody<'a>(&'a BTreeMap<String, TokenSecret>);

impl Serialize for FileBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (url, token) in self.0 {
            map.serialize_entry(url, token.expose_token())?;
        }
        map.end()
    }
}

fn write_file(path: &Path, sessions: &BTreeMap<String, TokenSecret>) -> Result<(), CliError> {
    if let Some(dir) = path.parent() {
        ibyok::files::create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut buf = Redacted::with_capacity(256);
    let _ = serde_json::to_writer_pretty(&mut buf, &FileBody(sessions));
    std::io::Write::write_all(&mut buf, b"\n").map_err(|e| e.to_string())?;
    ibyok::files::write_private(path, buf.expose()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Whether the file held a session for `vault` (now gone). The file goes
/// when it holds no other.
fn remove_from_file(path: &Path, vault: &str) -> Result<bool, CliError> {
    let mut sessions = read_file(path)?;
    if sessions.remove(vault).is_none() {
        return Ok(false);
    }
    if sessions.is_empty() {
        std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    } else {
        write_file(path, &sessions)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A folder of its own under the system's temporary one, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("ibyok-cli-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A keyring in memory.
    #[derive(Default)]
    struct MemoryKeyring(RefCell<HashMap<String, String>>);

    impl Keyring for MemoryKeyring {
        fn get(&self, vault: &str) -> Result<Option<TokenSecret>, String> {
            Ok(self.0.borrow().get(vault).cloned().map(TokenSecret::new))
        }
        fn set(&self, vault: &str, token: &TokenSecret) -> Result<(), String> {
            self.0.borrow_mut().insert(vault.to_owned(), token.expose_token().to_owned());
            Ok(())
        }
        fn delete(&self, vault: &str) -> Result<bool, String> {
            Ok(self.0.borrow_mut().remove(vault).is_some())
        }
    }

    /// A keyring that fails every call, as keyutils does where `keyctl` is
    /// forbidden.
    struct BrokenKeyring;

    impl Keyring for BrokenKeyring {
        fn get(&self, _: &str) -> Result<Option<TokenSecret>, String> {
            Err("Platform secure storage failure: Operation not permitted".into())
        }
        fn set(&self, _: &str, _: &TokenSecret) -> Result<(), String> {
            Err("Platform secure storage failure: Operation not permitted".into())
        }
        fn delete(&self, _: &str) -> Result<bool, String> {
            Err("Platform secure storage failure: Operation not permitted".into())
        }
    }

    const A: &str = "https://vault.acme.example";
    const B: &str = "http://127.0.0.1:8787";

    fn token(s: &str) -> TokenSecret {
        TokenSecret::new(s.to_owned())
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn without_a_keyring_the_session_goes_to_a_private_file_and_comes_back() {
        let dir = TempDir::new("file");
        let path = dir.0.join("config/ibyok/session");
        let s = Sessions::new(None, Some(path.clone()));
        assert!(s.load(A).unwrap().is_none(), "nothing kept yet");
        let (place, why) = s.save(A, &token("ibyok_session_a")).unwrap();
        assert_eq!((place, why), (Place::File(path.clone()), None));
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        assert_eq!(s.load(A).unwrap().unwrap().expose_token(), "ibyok_session_a");
        // One per vault; a trailing slash names the same vault.
        s.save(&format!("{B}/"), &token("ibyok_session_b")).unwrap();
        assert_eq!(s.load(B).unwrap().unwrap().expose_token(), "ibyok_session_b");
        assert_eq!(s.load(A).unwrap().unwrap().expose_token(), "ibyok_session_a");
        assert!(s.load("https://elsewhere.example").unwrap().is_none(), "never another vault's token");
        // Signing in again replaces it.
        s.save(A, &token("ibyok_session_a2")).unwrap();
        assert_eq!(s.load(A).unwrap().unwrap().expose_token(), "ibyok_session_a2");
        // Removing one keeps the other; removing the last removes the file.
        assert_eq!(s.remove(A).unwrap(), vec![Place::File(path.clone())]);
        assert!(s.load(A).unwrap().is_none());
        assert_eq!(s.load(B).unwrap().unwrap().expose_token(), "ibyok_session_b");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(s.remove(B).unwrap().len(), 1);
        assert!(!path.exists());
        assert!(s.remove(B).unwrap().is_empty(), "nothing left to remove");
    }

    #[cfg(unix)]
    #[test]
    fn a_session_file_made_readable_by_others_is_narrowed_again_when_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("narrow");
        let path = dir.0.join("session");
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Sessions::new(None, Some(path.clone())).save(A, &token("ibyok_x")).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn with_a_keyring_the_session_goes_there_and_not_to_the_file() {
        let dir = TempDir::new("keyring");
        let path = dir.0.join("session");
        let s = Sessions::new(Some(Box::new(MemoryKeyring::default())), Some(path.clone()));
        let (place, why) = s.save(A, &token("ibyok_in_keyring")).unwrap();
        assert_eq!((place, why), (Place::Keyring, None));
        assert!(!path.exists(), "no copy on disk");
        assert_eq!(s.load(A).unwrap().unwrap().expose_token(), "ibyok_in_keyring");
        assert_eq!(s.remove(A).unwrap(), vec![Place::Keyring]);
        assert!(s.load(A).unwrap().is_none());
    }

    #[test]
    fn a_failing_keyring_falls_back_to_the_file_and_says_why() {
        let dir = TempDir::new("broken");
        let path = dir.0.join("session");
        let s = Sessions::new(Some(Box::new(BrokenKeyring)), Some(path.clone()));
        let (place, why) = s.save(A, &token("ibyok_in_file")).unwrap();
        assert_eq!(place, Place::File(path.clone()));
        assert!(why.unwrap().contains("not permitted"));
        assert_eq!(s.load(A).unwrap().unwrap().expose_token(), "ibyok_in_file");
        assert_eq!(s.remove(A).unwrap(), vec![Place::File(path)]);
        assert!(s.load(A).unwrap().is_none());
    }

    #[test]
    fn a_session_kept_in_the_file_is_found_when_the_keyring_has_none_and_replaced_by_a_keyring_one() {
        let dir = TempDir::new("both");
        let path = dir.0.join("session");
        // Kept in the file while the keyring was out of reach…
        Sessions::new(None, Some(path.clone())).save(A, &token("ibyok_old")).unwrap();
        let s = Sessions::new(Some(Box::new(MemoryKeyring::default())), Some(path.clone()));
        assert_eq!(s.load(A).unwrap().unwrap().expose_token(), "ibyok_old");
        // …a new sign-in goes to the keyring and leaves no old copy behind.
        assert_eq!(s.save(A, &token("ibyok_new")).unwrap().0, Place::Keyring);
        assert!(!path.exists());
        assert_eq!(s.load(A).unwrap().unwrap().expose_token(), "ibyok_new");
    }

    #[test]
    fn a_damaged_session_file_is_an_error_that_names_it_not_its_content() {
        let dir = TempDir::new("damaged");
        let path = dir.0.join("session");
        std::fs::write(&path, "ibyok_secret_typed_by_hand").unwrap();
        let err = Sessions::new(None, Some(path.clone())).load(A).unwrap_err();
        assert!(err.contains(&path.display().to_string()) && !err.contains("ibyok_secret"), "{err}");
    }

    #[test]
    fn the_session_file_is_a_json_object_of_url_to_token() {
        let dir = TempDir::new("format");
        let path = dir.0.join("session");
        Sessions::new(None, Some(path.clone())).save(A, &token("ibyok_t")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({A: "ibyok_t"}));
    }
}
