//! GUI sessions: a random id in an HttpOnly, SameSite=Strict cookie maps to the user's token,
//! kept in memory only (never written anywhere, never in a URL). Each session has its own CSRF
//! token that every state-changing request must echo.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const COOKIE: &str = "kaas_session";
/// Sessions of one identity at most (signing in again ends the oldest).
pub const MAX_PER_IDENTITY: usize = 16;

/// One signed-in user.
#[derive(Clone)]
pub struct Session {
    /// The user's bearer token for the management cluster.
    pub token: String,
    /// Who the API server says the token belongs to.
    pub user: String,
    /// The tenant namespace the GUI shows.
    pub namespace: String,
    /// Anti-CSRF token, embedded in forms and sent as `X-CSRF-Token` by scripts.
    pub csrf: String,
    expires: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes, hex.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares without an early exit (the CSRF token is a secret).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// In-memory session store.
pub struct Store {
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Store {
    /// A store whose sessions live `ttl` after sign-in.
    pub fn new(ttl: Duration) -> Self {
        Store {
            ttl,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session; returns its id.
    pub fn create(&self, token: String, user: String, namespace: String) -> (String, Session) {
        let id = random_id();
        let s = Session {
            token,
            user,
            namespace,
            csrf: random_id(),
            expires: Instant::now() + self.ttl,
        };
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        // Bounded per identity: a user's oldest sessions end first.
        let mut same: Vec<(String, Instant)> = map
            .iter()
            .filter(|(_, x)| x.user == s.user)
            .map(|(k, x)| (k.clone(), x.expires))
            .collect();
        same.sort_by_key(|(_, e)| *e);
        while same.len() >= MAX_PER_IDENTITY {
            map.remove(&same.remove(0).0);
        }
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Seconds a new session lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_ids_differ() {
        let store = Store::new(Duration::from_millis(50));
        let (a, sa) = store.create("t".into(), "u".into(), "ns".into());
        let (b, sb) = store.create("t".into(), "u".into(), "ns".into());
        assert_ne!(a, b);
        assert_ne!(sa.csrf, sb.csrf);
        assert_eq!(a.len(), 64);
        assert!(store.get(&a).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(store.get(&a).is_none(), "expired");
        store.remove(&b);
        assert!(store.get(&b).is_none());
    }

    #[test]
    fn sessions_are_capped_per_identity() {
        let store = Store::new(Duration::from_secs(60));
        let first = store.create("t".into(), "u".into(), "ns".into()).0;
        for _ in 0..MAX_PER_IDENTITY {
            store.create("t".into(), "u".into(), "ns".into());
        }
        let other = store.create("t".into(), "v".into(), "ns".into()).0;
        assert!(store.get(&first).is_none(), "the oldest session of u ended");
        assert!(store.get(&other).is_some());
        assert_eq!(store.sessions.lock().unwrap().len(), MAX_PER_IDENTITY + 1);
    }

    #[test]
    fn csrf_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let store = Store::new(Duration::from_secs(5));
        let (_, s) = store.create("secret-token-value".into(), "u".into(), "ns".into());
        assert!(!format!("{s:?}").contains("secret-token-value"));
    }
}
