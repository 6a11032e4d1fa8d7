//! etcd's auth token providers (etcd 3.4 `auth/simple_token.go`, `auth/jwt.go`,
//! `auth/options.go`, `auth/nop.go` and `NewTokenProvider` in `auth/store.go`).
//!
//! `--auth-token` is `TYPE[,NAME=VALUE]...`:
//! - `simple`: tokens are `PREFIX.INDEX` (16 random letters, a dot, the raft index of the
//!   Authenticate entry), known only to the member that applied the entry, kept in memory
//!   for `--auth-token-ttl` seconds (default 300) after their last use.
//! - `jwt,sign-method=M,priv-key=FILE,pub-key=FILE,ttl=DURATION`: signed JSON Web Tokens
//!   with the claims `username` (string), `revision` (auth revision, number) and `exp`
//!   (Unix seconds); any member with the key can check them. `ttl` is a Go duration
//!   (`10m`, `1h30m`), default 5m.
//! - `` (empty): etcd's "nop" provider, which issues and accepts no tokens.
//!
//! Errors carry etcd's texts (`auth: invalid auth options`, ...), so that scripts matching
//! them keep working.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use net::{Code, Status};
use rand::Rng;
use serde::Serialize;

use crate::auth::AuthInfo;

/// `--auth-token-ttl` default and the value used for 0, in seconds (etcd `embed/config.go`
/// `AuthTokenTTL: 300`; `simpleTokenTTLDefault` for a TTL of 0).
pub const SIMPLE_TOKEN_TTL_DEFAULT_S: u64 = 300;
/// The JWT lifetime without a `ttl=` option, in seconds (etcd `auth/options.go`
/// `DefaultTTL = 5 * time.Minute`).
pub const JWT_TTL_DEFAULT_S: u64 = 5 * 60;
/// The TTL used when `--auth-token-ttl` is too large to add to a clock reading, in
/// seconds (100 years).
pub const SIMPLE_TOKEN_TTL_MAX_S: u64 = 100 * 365 * 24 * 3600;
/// Letters in a simple token prefix (etcd `defaultSimpleTokenLength`).
pub const SIMPLE_TOKEN_PREFIX_CHARS: usize = 16;
/// The alphabet of simple token prefixes (etcd `letters`).
const SIMPLE_TOKEN_LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const _: () = assert!(SIMPLE_TOKEN_LETTERS.len() == 52);

/// etcd `ErrInvalidAuthOpts`: a malformed `--auth-token`, an unknown token type, or a JWT
/// option that does not parse (ttl, unreadable key file, unknown sign method).
pub const ERR_INVALID_AUTH_OPTS: &str = "auth: invalid auth options";
/// etcd `ErrMissingKey`: a JWT sign method without the key it needs.
pub const ERR_MISSING_KEY: &str = "auth: missing key data";
/// etcd `ErrKeyMismatch`: `pub-key` is not the public half of `priv-key`.
pub const ERR_KEY_MISMATCH: &str = "auth: public and private keys don't match";
/// etcd `ErrVerifyOnly`: Authenticate on a JWT provider given only `pub-key`.
pub const ERR_VERIFY_ONLY: &str = "auth: token signing attempted with verify-only key";
/// golang-jwt v3 `ErrKeyMustBePEMEncoded`: a key file without a PEM block.
pub const ERR_KEY_MUST_BE_PEM: &str =
    "Invalid Key: Key must be PEM encoded PKCS1 or PKCS8 private key";
/// golang-jwt v3 `ErrNotRSAPrivateKey`.
pub const ERR_NOT_RSA_PRIVATE_KEY: &str = "Key is not a valid RSA private key";
/// golang-jwt v3 `ErrNotRSAPublicKey`.
pub const ERR_NOT_RSA_PUBLIC_KEY: &str = "Key is not a valid RSA public key";
/// golang-jwt v3 `ErrNotECPrivateKey`.
pub const ERR_NOT_EC_PRIVATE_KEY: &str = "Key is not a valid ECDSA private key";
/// golang-jwt v3 `ErrNotECPublicKey`.
pub const ERR_NOT_EC_PUBLIC_KEY: &str = "Key is not a valid ECDSA public key";

/// A JWT `sign-method`: the names golang-jwt v3 registers (`jwt.GetSigningMethod`, exact
/// case). etcd 3.4 signs with the HMAC, RSA, RSA-PSS and ECDSA ones; `EdDSA` and `none`
/// parse but `Tokens::new` refuses them as etcd's `jwtOptions.Key` does.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMethod {
    /// HMAC SHA-256; the key is the bytes of `priv-key`.
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// ECDSA P-521 SHA-512: etcd supports it, Cairn's JWT library (jsonwebtoken 9 on ring)
    /// does not, so `Tokens::new` refuses it.
    ES512,
    /// Ed25519: registered by golang-jwt, refused by etcd 3.4.
    EdDSA,
    /// Unsigned tokens: registered by golang-jwt, refused by etcd.
    None,
}

/// The kind of key a sign method takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyFamily {
    Hmac,
    Rsa,
    Ec(Curve),
    Unsupported,
}

impl SignMethod {
    const ALL: [SignMethod; 14] = [
        SignMethod::HS256,
        SignMethod::HS384,
        SignMethod::HS512,
        SignMethod::RS256,
        SignMethod::RS384,
        SignMethod::RS512,
        SignMethod::PS256,
        SignMethod::PS384,
        SignMethod::PS512,
        SignMethod::ES256,
        SignMethod::ES384,
        SignMethod::ES512,
        SignMethod::EdDSA,
        SignMethod::None,
    ];

    /// The method called `name` (the JWT `alg` value, case-sensitive), if golang-jwt
    /// knows it.
    pub fn from_name(name: &str) -> Option<SignMethod> {
        SignMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The JWT `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            SignMethod::HS256 => "HS256",
            SignMethod::HS384 => "HS384",
            SignMethod::HS512 => "HS512",
            SignMethod::RS256 => "RS256",
            SignMethod::RS384 => "RS384",
            SignMethod::RS512 => "RS512",
            SignMethod::PS256 => "PS256",
            SignMethod::PS384 => "PS384",
            SignMethod::PS512 => "PS512",
            SignMethod::ES256 => "ES256",
            SignMethod::ES384 => "ES384",
            SignMethod::ES512 => "ES512",
            SignMethod::EdDSA => "EdDSA",
            SignMethod::None => "none",
        }
    }

    fn family(self) -> KeyFamily {
        match self {
            SignMethod::HS256 | SignMethod::HS384 | SignMethod::HS512 => KeyFamily::Hmac,
            SignMethod::RS256
            | SignMethod::RS384
            | SignMethod::RS512
            | SignMethod::PS256
            | SignMethod::PS384
            | SignMethod::PS512 => KeyFamily::Rsa,
            SignMethod::ES256 => KeyFamily::Ec(Curve::P256),
            SignMethod::ES384 => KeyFamily::Ec(Curve::P384),
            SignMethod::ES512 => KeyFamily::Ec(Curve::P521),
            SignMethod::EdDSA | SignMethod::None => KeyFamily::Unsupported,
        }
    }

    /// jsonwebtoken's algorithm, for the methods Cairn can sign with.
    fn algorithm(self) -> Option<Algorithm> {
        Some(match self {
            SignMethod::HS256 => Algorithm::HS256,
            SignMethod::HS384 => Algorithm::HS384,
            SignMethod::HS512 => Algorithm::HS512,
            SignMethod::RS256 => Algorithm::RS256,
            SignMethod::RS384 => Algorithm::RS384,
            SignMethod::RS512 => Algorithm::RS512,
            SignMethod::PS256 => Algorithm::PS256,
            SignMethod::PS384 => Algorithm::PS384,
            SignMethod::PS512 => Algorithm::PS512,
            SignMethod::ES256 => Algorithm::ES256,
            SignMethod::ES384 => Algorithm::ES384,
            SignMethod::ES512 | SignMethod::EdDSA | SignMethod::None => return None,
        })
    }
}

/// A parsed `--auth-token` (with `--auth-token-ttl` for simple tokens). Key files are
/// read here and parsed by [`Tokens::new`], as etcd splits `jwtOptions.Parse` and `Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenConfig {
    /// `--auth-token ''`: etcd's nop provider (Authenticate fails, no token is valid).
    Nop,
    /// `--auth-token simple`: in-memory tokens living `ttl` after their last use.
    Simple {
        /// Idle lifetime of a token (`--auth-token-ttl` seconds; 0 means 300).
        ttl: Duration,
    },
    /// `--auth-token jwt,...`.
    Jwt(JwtConfig),
}

/// The options of `--auth-token jwt,...` (etcd `jwtOptions`).
#[derive(Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// `sign-method=` (required).
    pub sign_method: SignMethod,
    /// `ttl=`: lifetime of a token from its signing (`exp` = now + ttl, whole seconds);
    /// default 5m.
    pub ttl: Duration,
    /// The contents of the `pub-key=` file (PEM), if given and not empty.
    pub public_key: Option<Vec<u8>>,
    /// The contents of the `priv-key=` file (PEM, or the raw secret for HS*), if given and
    /// not empty.
    pub private_key: Option<Vec<u8>>,
}

impl fmt::Debug for JwtConfig {
    /// Key contents are secret: only their sizes are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("sign_method", &self.sign_method)
            .field("ttl", &self.ttl)
            .field("public_key_bytes", &self.public_key.as_ref().map(Vec::len))
            .field(
                "private_key_bytes",
                &self.private_key.as_ref().map(Vec::len),
            )
            .finish()
    }
}

/// The JWT options etcd knows (`knownOptions`); others are only warned about.
const JWT_OPTIONS: [&str; 4] = ["sign-method", "pub-key", "priv-key", "ttl"];

impl TokenConfig {
    /// Parses `--auth-token` (`auth_token`) and `--auth-token-ttl` (`auth_token_ttl_s`,
    /// seconds, used by simple tokens only; 0 means 300).
    ///
    /// Errors (etcd `decomposeOpts`, `NewTokenProvider`, `jwtOptions.ParseWithDefaults`),
    /// all [`ERR_INVALID_AUTH_OPTS`]: an option that is not exactly one `NAME=VALUE`, a
    /// repeated option, a type other than `simple`, `jwt` and ``; for `jwt`, a `ttl` that
    /// is not a Go duration, an unreadable key file, a missing or unknown `sign-method`.
    /// Unknown JWT options are logged and ignored, as etcd does. Cairn also refuses a
    /// negative `ttl` (etcd accepts it and issues tokens that are already expired).
    pub fn parse(auth_token: &str, auth_token_ttl_s: u64) -> Result<TokenConfig, String> {
        let (kind, options) = decompose(auth_token)?;
        match kind {
            "simple" => {
                let ttl_s = if auth_token_ttl_s == 0 {
                    SIMPLE_TOKEN_TTL_DEFAULT_S
                } else {
                    auth_token_ttl_s
                };
                Ok(TokenConfig::Simple {
                    ttl: Duration::from_secs(ttl_s),
                })
            }
            "jwt" => parse_jwt(&options).map(TokenConfig::Jwt).map_err(|detail| {
                tracing::error!(%detail, "problem loading JWT options");
                ERR_INVALID_AUTH_OPTS.to_string()
            }),
            "" => Ok(TokenConfig::Nop),
            other => {
                tracing::warn!(kind = other, "unknown token type");
                Err(ERR_INVALID_AUTH_OPTS.to_string())
            }
        }
    }
}

/// The `NAME=VALUE` options of `--auth-token`, in order.
type TokenOptions<'a> = Vec<(&'a str, &'a str)>;

/// Splits `TYPE,NAME=VALUE,...` (etcd `decomposeOpts`).
fn decompose(auth_token: &str) -> Result<(&str, TokenOptions<'_>), String> {
    let mut parts = auth_token.split(',');
    let kind = parts.next().unwrap_or("");
    let mut options: TokenOptions<'_> = Vec::new();
    for part in parts {
        let pair: Vec<&str> = part.split('=').collect();
        let [name, value] = pair[..] else {
            tracing::warn!(option = auth_token, "invalid token option");
            return Err(ERR_INVALID_AUTH_OPTS.to_string());
        };
        if options.iter().any(|(seen, _)| *seen == name) {
            tracing::warn!(
                option = auth_token,
                duplicate = name,
                "invalid token option"
            );
            return Err(ERR_INVALID_AUTH_OPTS.to_string());
        }
        options.push((name, value));
    }
    Ok((kind, options))
}

/// etcd `jwtOptions.ParseWithDefaults`: the error is a detail for the log.
fn parse_jwt(options: &[(&str, &str)]) -> Result<JwtConfig, String> {
    let option = |name: &str| {
        options
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    };
    let unknown: Vec<&str> = options
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !JWT_OPTIONS.contains(n))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(keys = ?unknown, "unknown JWT options");
    }
    let ttl = match option("ttl") {
        None => Duration::from_secs(JWT_TTL_DEFAULT_S),
        Some(text) => parse_go_duration(text)?,
    };
    let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
        match option(name) {
            None => Ok(None),
            Some(path) => std::fs::read(path)
                .map(|bytes| Some(bytes).filter(|b| !b.is_empty()))
                .map_err(|err| format!("{name}={path}: {err}")),
        }
    };
    let public_key = read("pub-key")?;
    let private_key = read("priv-key")?;
    let method = option("sign-method").unwrap_or("");
    let sign_method = SignMethod::from_name(method)
        .ok_or_else(|| format!("auth: invalid auth signature method {method:?}"))?;
    Ok(JwtConfig {
        sign_method,
        ttl,
        public_key,
        private_key,
    })
}

/// Parses a Go `time.ParseDuration` string (`300ms`, `1.5h`, `2h45m`; units ns, us, µs,
/// ms, s, m, h; `0` alone needs no unit). Negative durations are refused. The error is a
/// detail for the log.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let whole = &rest[..digits(rest)];
        rest = &rest[whole.len()..];
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            fraction = &after_dot[..digits(after_dot)];
            rest = &after_dot[fraction.len()..];
        }
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ns: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        total_ns = whole
            .checked_mul(unit_ns)
            .and_then(|ns| total_ns.checked_add(ns))
            .ok_or_else(invalid)?;
        if !fraction.is_empty() {
            let fraction: f64 = format!("0.{fraction}").parse().map_err(|_| invalid())?;
            total_ns += (fraction * unit_ns as f64) as u128;
        }
        if total_ns > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    if negative && total_ns > 0 {
        return Err(format!("negative duration {text:?}"));
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

/// The raft index a simple token was issued at: the number after the dot of `PREFIX.INDEX`
/// (etcd `isValidSimpleToken`: exactly two dot-separated parts, the second a number).
/// `None` for anything else, which is then an invalid token. The server applies that index
/// before checking the token, since the member that issued it registered it then.
pub fn simple_token_index(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_prefix, index) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    index.parse().ok()
}

/// The token provider of a member (etcd `TokenProvider`), shared by every core. Starts
/// disabled: call [`Tokens::enable`] when auth is enabled (at start-up if the store says
/// so, and on AuthEnable), [`Tokens::disable`] on AuthDisable.
pub struct Tokens {
    provider: Provider,
}

const _: () = {
    const fn shared_by_cores<T: Send + Sync>() {}
    shared_by_cores::<Tokens>()
};

enum Provider {
    Nop,
    Simple(SimpleTokens),
    Jwt(Box<JwtTokens>),
}

/// Simple tokens: token → user and deadline, under one short-held lock.
struct SimpleTokens {
    ttl: Duration,
    state: Mutex<SimpleState>,
}

#[derive(Default)]
struct SimpleState {
    /// etcd registers tokens only while enabled (`simpleTokenKeeper != nil`).
    enabled: bool,
    tokens: HashMap<String, SimpleToken>,
}

struct SimpleToken {
    username: String,
    /// The token is expired once `now > deadline` (etcd's keeper: `nowtime.After(end)`).
    deadline: Instant,
}

struct JwtTokens {
    method: SignMethod,
    algorithm: Algorithm,
    ttl: Duration,
    /// `None` for a verify-only provider (`pub-key` without `priv-key`).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
}

/// The claims etcd's JWTs carry, in the order Go's `MapClaims` marshals them.
#[derive(Serialize)]
struct JwtClaims<'a> {
    /// Unix seconds: signing time + ttl, truncated (Go `time.Now().Add(ttl).Unix()`).
    exp: u64,
    /// The auth store revision at Authenticate.
    revision: u64,
    username: &'a str,
}

impl Tokens {
    /// The provider `config` describes. JWT key errors (etcd `jwtOptions.Key`):
    /// [`ERR_MISSING_KEY`] without a usable key, the golang-jwt PEM texts
    /// ([`ERR_KEY_MUST_BE_PEM`], [`ERR_NOT_RSA_PRIVATE_KEY`], ...) for keys that do not
    /// parse as the method's kind, [`ERR_KEY_MISMATCH`] when `pub-key` is not the public
    /// half of `priv-key`, `unsupported signing method: <Go type>` for `EdDSA` and `none`.
    /// Cairn adds: ES512 is refused (no P-521 in its crypto library), an ECDSA key of
    /// another curve than the method's is refused here (etcd fails at signing), and the
    /// private key must sign a probe token (ring needs RSA keys of 2048 bits or more).
    pub fn new(config: &TokenConfig) -> Result<Tokens, String> {
        let provider = match config {
            TokenConfig::Nop => Provider::Nop,
            TokenConfig::Simple { ttl } => {
                tracing::warn!("simple token is not cryptographically signed");
                Provider::Simple(SimpleTokens {
                    ttl: *ttl,
                    state: Mutex::new(SimpleState::default()),
                })
            }
            TokenConfig::Jwt(jwt) => Provider::Jwt(Box::new(JwtTokens::new(jwt)?)),
        };
        Ok(Tokens { provider })
    }

    /// `"simple"`, `"jwt"` or `"nop"`, for logs.
    pub fn kind(&self) -> &'static str {
        match self.provider {
            Provider::Nop => "nop",
            Provider::Simple(_) => "simple",
            Provider::Jwt(_) => "jwt",
        }
    }

    /// Auth was enabled: simple tokens are registered from now on (etcd
    /// `tokenSimple.enable`). No-op for jwt.
    pub fn enable(&self) {
        if let Provider::Simple(simple) = &self.provider {
            simple.lock().enabled = true;
        }
    }

    /// Auth was disabled: every simple token is dropped and none is registered until
    /// [`Tokens::enable`] (etcd `tokenSimple.disable`). No-op for jwt.
    pub fn disable(&self) {
        if let Provider::Simple(simple) = &self.provider {
            let mut state = simple.lock();
            state.enabled = false;
            state.tokens = HashMap::new();
        }
    }

    /// The prefix the leader puts in an Authenticate entry (etcd `GenTokenPrefix`):
    /// [`SIMPLE_TOKEN_PREFIX_CHARS`] random letters `a-zA-Z` for simple tokens, `""`
    /// otherwise.
    pub fn gen_prefix(&self) -> String {
        match self.provider {
            Provider::Simple(_) => {
                let mut rng = rand::thread_rng();
                (0..SIMPLE_TOKEN_PREFIX_CHARS)
                    .map(|_| SIMPLE_TOKEN_LETTERS[rng.gen_range(0..SIMPLE_TOKEN_LETTERS.len())])
                    .map(char::from)
                    .collect()
            }
            Provider::Nop | Provider::Jwt(_) => String::new(),
        }
    }

    /// The token for `username`, who authenticated in the entry at raft `index` carrying
    /// `prefix`, at auth store `revision` (etcd `TokenProvider.assign`).
    ///
    /// Simple: `"{prefix}.{index}"`, registered (while enabled) for
    /// `--auth-token-ttl`; expired tokens are purged here. jwt: a token signed with the
    /// claims `username`, `revision`, `exp`. Errors: jwt verify-only →
    /// `Unknown` [`ERR_VERIFY_ONLY`]; a signing failure → `Unknown` with its text (etcd
    /// returns both unmapped, so grpc-go sends code Unknown); nop → `auth_failed`.
    ///
    /// Panics if the simple token is already registered for another user: one raft entry
    /// authenticates one user (etcd panics too).
    pub fn assign(
        &self,
        prefix: &str,
        index: u64,
        username: &str,
        revision: u64,
    ) -> Result<String, Status> {
        match &self.provider {
            Provider::Nop => Err(crate::errors::auth_failed()),
            Provider::Simple(simple) => Ok(simple.assign(prefix, index, username, Instant::now())),
            Provider::Jwt(jwt) => jwt.assign(username, revision, SystemTime::now()),
        }
    }

    /// Who `token` authenticates (etcd `TokenProvider.info`), or `None` for an invalid
    /// token (the caller answers `invalid_auth_token`).
    ///
    /// Simple: a registered, unexpired token gives its user at `current_revision` (the
    /// auth store revision now) and its idle TTL restarts (etcd `resetSimpleToken`). jwt:
    /// the signature (with the configured method only), `exp`, `nbf` and `iat` are checked
    /// with no leeway, as golang-jwt v3 does; user and revision come from the claims.
    pub fn info(&self, token: &str, current_revision: u64) -> Option<AuthInfo> {
        match &self.provider {
            Provider::Nop => None,
            Provider::Simple(simple) => simple.info(token, current_revision, Instant::now()),
            Provider::Jwt(jwt) => jwt.info(token),
        }
    }

    /// Drops every simple token of `username` (etcd `invalidateUser`: on UserDelete and
    /// UserChangePassword). No-op for jwt: its tokens live until `exp`.
    pub fn invalidate_user(&self, username: &str) {
        if let Provider::Simple(simple) = &self.provider {
            simple
                .lock()
                .tokens
                .retain(|_, token| token.username != username);
        }
    }
}

impl SimpleTokens {
    /// The state, also after a panic elsewhere (the map is consistent at every step).
    fn lock(&self) -> MutexGuard<'_, SimpleState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When a token used at `now` expires; a TTL past what `Instant` holds (a huge
    /// `--auth-token-ttl`) means [`SIMPLE_TOKEN_TTL_MAX_S`].
    fn deadline(&self, now: Instant) -> Instant {
        now.checked_add(self.ttl)
            .unwrap_or_else(|| now + Duration::from_secs(SIMPLE_TOKEN_TTL_MAX_S))
    }

    fn assign(&self, prefix: &str, index: u64, username: &str, now: Instant) -> String {
        let token = format!("{prefix}.{index}");
        let deadline = self.deadline(now);
        let conflict = {
            let mut state = self.lock();
            if !state.enabled {
                return token;
            }
            state.tokens.retain(|_, t| now <= t.deadline);
            match state.tokens.get_mut(&token) {
                // The same entry applied again (e.g. by another core): keep one token.
                Some(existing) if existing.username == username => {
                    existing.deadline = deadline;
                    None
                }
                Some(existing) => Some(existing.username.clone()),
                None => {
                    state.tokens.insert(
                        token.clone(),
                        SimpleToken {
                            username: username.to_string(),
                            deadline,
                        },
                    );
                    None
                }
            }
        };
        if let Some(holder) = conflict {
            panic!("simple token {token} assigned to {username:?} is already used by {holder:?}");
        }
        token
    }

    fn info(&self, token: &str, current_revision: u64, now: Instant) -> Option<AuthInfo> {
        simple_token_index(token)?;
        let mut state = self.lock();
        let entry = state.tokens.get_mut(token)?;
        if now > entry.deadline {
            state.tokens.remove(token);
            return None;
        }
        entry.deadline = self.deadline(now);
        Some(AuthInfo {
            username: entry.username.clone(),
            revision: current_revision,
        })
    }
}

impl JwtTokens {
    fn new(config: &JwtConfig) -> Result<JwtTokens, String> {
        let method = config.sign_method;
        let (encoding, decoding) = jwt_keys(config)?;
        let Some(algorithm) = method.algorithm() else {
            unreachable!("jwt_keys accepted {method:?}");
        };
        let mut validation = Validation::new(algorithm);
        // golang-jwt v3 MapClaims.Valid: exp, iat and nbf checked only when present, and
        // with no leeway; no audience check.
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        let tokens = JwtTokens {
            method,
            algorithm,
            ttl: config.ttl,
            encoding,
            decoding,
            validation,
        };
        if tokens.encoding.is_some() {
            // Signed an hour ahead, so that even a ttl of 0 gives an unexpired probe.
            let probe_time = SystemTime::now() + Duration::from_secs(3600);
            let probe = tokens.assign("probe", 0, probe_time).map_err(|status| {
                format!(
                    "auth: cannot sign with the {} key: {}",
                    method.name(),
                    status.message
                )
            })?;
            if tokens.info(&probe).is_none() {
                return Err(format!(
                    "auth: a {} token signed with priv-key does not verify",
                    method.name()
                ));
            }
        }
        Ok(tokens)
    }

    fn assign(&self, username: &str, revision: u64, now: SystemTime) -> Result<String, Status> {
        let Some(key) = &self.encoding else {
            return Err(Status::new(Code::Unknown, ERR_VERIFY_ONLY));
        };
        let exp = (now + self.ttl)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let claims = JwtClaims {
            exp,
            revision,
            username,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|err| {
            tracing::debug!(user = username, revision, %err, "failed to sign a JWT token");
            Status::new(Code::Unknown, err.to_string())
        })
    }

    fn info(&self, token: &str) -> Option<AuthInfo> {
        type Claims = serde_json::Map<String, serde_json::Value>;
        let claims = match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => data.claims,
            Err(err) => {
                tracing::debug!(method = self.method.name(), %err, "failed to parse a JWT token");
                return None;
            }
        };
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if claims
            .get("iat")
            .and_then(serde_json::Value::as_f64)
            .is_some_and(|iat| iat.trunc() > now_s as f64)
        {
            tracing::debug!("JWT token used before issued");
            return None;
        }
        let username = claims.get("username")?.as_str()?.to_string();
        let revision = claims.get("revision")?;
        let revision = revision
            .as_u64()
            .or_else(|| revision.as_f64().filter(|r| *r >= 0.0).map(|r| r as u64))?;
        Some(AuthInfo { username, revision })
    }
}

/// The signing and verifying keys of `config` (etcd `jwtOptions.Key`).
fn jwt_keys(config: &JwtConfig) -> Result<(Option<EncodingKey>, DecodingKey), String> {
    let private = config.private_key.as_deref();
    let public = config.public_key.as_deref();
    match config.sign_method.family() {
        KeyFamily::Unsupported => Err(format!(
            "unsupported signing method: {}",
            match config.sign_method {
                SignMethod::EdDSA => "*jwt.SigningMethodEd25519",
                _ => "*jwt.signingMethodNone",
            }
        )),
        KeyFamily::Hmac => {
            let secret = private.ok_or(ERR_MISSING_KEY)?;
            Ok((
                Some(EncodingKey::from_secret(secret)),
                DecodingKey::from_secret(secret),
            ))
        }
        KeyFamily::Rsa => {
            let private = private.map(rsa_private_key).transpose()?;
            let public = public.map(rsa_public_key).transpose()?;
            match (private, public) {
                (None, None) => Err(ERR_MISSING_KEY.to_string()),
                (None, Some(public)) => Ok((None, DecodingKey::from_rsa_der(&public.to_der()))),
                (Some(private), public) => {
                    if public.is_some_and(|p| p != private.public) {
                        return Err(ERR_KEY_MISMATCH.to_string());
                    }
                    Ok((
                        Some(EncodingKey::from_rsa_der(&private.pkcs1)),
                        DecodingKey::from_rsa_der(&private.public.to_der()),
                    ))
                }
            }
        }
        KeyFamily::Ec(curve) => {
            if curve == Curve::P521 {
                return Err(
                    "auth: sign-method ES512 (ECDSA P-521) is not supported by Cairn; use ES256 or ES384"
                        .to_string(),
                );
            }
            let private = private.map(ec_private_key).transpose()?;
            let public = public.map(ec_public_key).transpose()?;
            let key_curve = private.as_ref().map(|k| k.public.curve);
            if let Some(other) = key_curve.or(public.as_ref().map(|p| p.curve)) {
                if other != curve {
                    return Err(format!(
                        "auth: sign-method {} needs a {} key, not {}",
                        config.sign_method.name(),
                        curve.name(),
                        other.name()
                    ));
                }
            }
            match (private, public) {
                (None, None) => Err(ERR_MISSING_KEY.to_string()),
                (None, Some(public)) => Ok((None, DecodingKey::from_ec_der(&public.point))),
                (Some(private), public) => {
                    if public.is_some_and(|p| p != private.public) {
                        return Err(ERR_KEY_MISMATCH.to_string());
                    }
                    Ok((
                        Some(EncodingKey::from_ec_der(&private.pkcs8)),
                        DecodingKey::from_ec_der(&private.public.point),
                    ))
                }
            }
        }
    }
}

// ---- PEM and DER: just enough to read the keys golang-jwt reads ----

/// An elliptic curve, by its DER OID contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CONTEXT_0: u8 = 0xa0;
const TAG_CONTEXT_1: u8 = 0xa1;

impl Curve {
    fn from_oid(oid: &[u8]) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            OID_P521 => Some(Curve::P521),
            _ => None,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }
}

/// An RSA public key: the DER contents of its modulus and exponent INTEGERs (canonical, so
/// equal keys compare equal).
#[derive(Debug, PartialEq, Eq)]
struct RsaPublic {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl RsaPublic {
    /// PKCS#1 `RSAPublicKey` DER, the form ring verifies with.
    fn to_der(&self) -> Vec<u8> {
        let mut body = der_tlv(TAG_INTEGER, &self.n);
        body.extend(der_tlv(TAG_INTEGER, &self.e));
        der_tlv(TAG_SEQUENCE, &body)
    }
}

struct RsaPrivate {
    /// PKCS#1 `RSAPrivateKey` DER, the form ring signs with.
    pkcs1: Vec<u8>,
    public: RsaPublic,
}

/// An EC public key: its curve and uncompressed point.
#[derive(Debug, PartialEq, Eq)]
struct EcPublic {
    curve: Curve,
    point: Vec<u8>,
}

struct EcPrivate {
    /// PKCS#8 DER, the form ring signs with.
    pkcs8: Vec<u8>,
    public: EcPublic,
}

/// golang-jwt `ParseRSAPrivateKeyFromPEM`: PKCS#1 or PKCS#8, whatever the PEM label.
fn rsa_private_key(pem: &[u8]) -> Result<RsaPrivate, String> {
    let der = pem_block(pem).ok_or(ERR_KEY_MUST_BE_PEM)?;
    if let Some(key) = rsa_private_pkcs1(&der) {
        return Ok(key);
    }
    let (oid, _params, inner) = pkcs8_parts(&der).ok_or(ERR_NOT_RSA_PRIVATE_KEY)?;
    if oid != OID_RSA_ENCRYPTION {
        return Err(ERR_NOT_RSA_PRIVATE_KEY.to_string());
    }
    rsa_private_pkcs1(inner).ok_or_else(|| ERR_NOT_RSA_PRIVATE_KEY.to_string())
}

/// PKCS#1 `RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, ... }`.
fn rsa_private_pkcs1(der: &[u8]) -> Option<RsaPrivate> {
    let (body, _) = der_expect(der, TAG_SEQUENCE)?;
    let (_version, rest) = der_expect(body, TAG_INTEGER)?;
    let (n, rest) = der_expect(rest, TAG_INTEGER)?;
    let (e, rest) = der_expect(rest, TAG_INTEGER)?;
    der_expect(rest, TAG_INTEGER)?;
    Some(RsaPrivate {
        pkcs1: der.to_vec(),
        public: RsaPublic {
            n: n.to_vec(),
            e: e.to_vec(),
        },
    })
}

/// golang-jwt `ParseRSAPublicKeyFromPEM`: SubjectPublicKeyInfo or a certificate (and, as
/// a Cairn extra, PKCS#1 `RSA PUBLIC KEY`).
fn rsa_public_key(pem: &[u8]) -> Result<RsaPublic, String> {
    let der = pem_block(pem).ok_or(ERR_KEY_MUST_BE_PEM)?;
    let pkcs1 = match spki_or_certificate(&der) {
        Some((oid, _params, key)) if oid == OID_RSA_ENCRYPTION => key,
        Some(_) => return Err(ERR_NOT_RSA_PUBLIC_KEY.to_string()),
        None => &der[..],
    };
    let (body, _) = der_expect(pkcs1, TAG_SEQUENCE).ok_or(ERR_NOT_RSA_PUBLIC_KEY)?;
    let (n, rest) = der_expect(body, TAG_INTEGER).ok_or(ERR_NOT_RSA_PUBLIC_KEY)?;
    let (e, _) = der_expect(rest, TAG_INTEGER).ok_or(ERR_NOT_RSA_PUBLIC_KEY)?;
    Ok(RsaPublic {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

/// golang-jwt `ParseECPrivateKeyFromPEM`: SEC1 `EC PRIVATE KEY` or PKCS#8. The public
/// point must be in the key (OpenSSL always writes it).
fn ec_private_key(pem: &[u8]) -> Result<EcPrivate, String> {
    let der = pem_block(pem).ok_or(ERR_KEY_MUST_BE_PEM)?;
    let invalid = || ERR_NOT_EC_PRIVATE_KEY.to_string();
    if let Some((oid, params, sec1)) = pkcs8_parts(&der) {
        if oid != OID_EC_PUBLIC_KEY {
            return Err(invalid());
        }
        let (curve_oid, _) = der_expect(params, TAG_OID).ok_or_else(invalid)?;
        let curve = Curve::from_oid(curve_oid).ok_or_else(invalid)?;
        let (_, point) = sec1_parts(sec1).ok_or_else(invalid)?;
        return Ok(EcPrivate {
            pkcs8: der.clone(),
            public: EcPublic {
                curve,
                point: point.ok_or_else(invalid)?.to_vec(),
            },
        });
    }
    let (curve, point) = sec1_parts(&der).ok_or_else(invalid)?;
    let curve = curve.ok_or_else(invalid)?;
    let point = point.ok_or_else(invalid)?.to_vec();
    // PrivateKeyInfo { version 0, AlgorithmIdentifier { ecPublicKey, curve }, OCTET STRING sec1 }
    let mut algorithm = der_tlv(TAG_OID, OID_EC_PUBLIC_KEY);
    algorithm.extend(der_tlv(TAG_OID, curve.oid()));
    let mut body = der_tlv(TAG_INTEGER, &[0]);
    body.extend(der_tlv(TAG_SEQUENCE, &algorithm));
    body.extend(der_tlv(TAG_OCTET_STRING, &der));
    Ok(EcPrivate {
        pkcs8: der_tlv(TAG_SEQUENCE, &body),
        public: EcPublic { curve, point },
    })
}

/// SEC1 `ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING,
/// [0] parameters OPTIONAL, [1] publicKey BIT STRING OPTIONAL }` → (curve, point).
fn sec1_parts(der: &[u8]) -> Option<(Option<Curve>, Option<&[u8]>)> {
    let (body, _) = der_expect(der, TAG_SEQUENCE)?;
    let (version, rest) = der_expect(body, TAG_INTEGER)?;
    if version != [1] {
        return None;
    }
    let (_private, mut rest) = der_expect(rest, TAG_OCTET_STRING)?;
    let mut curve = None;
    let mut point = None;
    while let Some((tag, value, after)) = der_next(rest) {
        match tag {
            TAG_CONTEXT_0 => curve = Some(Curve::from_oid(der_expect(value, TAG_OID)?.0)?),
            TAG_CONTEXT_1 => point = Some(bit_string(der_expect(value, TAG_BIT_STRING)?.0)?),
            _ => return None,
        }
        rest = after;
    }
    Some((curve, point))
}

/// golang-jwt `ParseECPublicKeyFromPEM`: SubjectPublicKeyInfo or a certificate.
fn ec_public_key(pem: &[u8]) -> Result<EcPublic, String> {
    let der = pem_block(pem).ok_or(ERR_KEY_MUST_BE_PEM)?;
    let invalid = || ERR_NOT_EC_PUBLIC_KEY.to_string();
    let (oid, params, point) = spki_or_certificate(&der).ok_or_else(invalid)?;
    if oid != OID_EC_PUBLIC_KEY {
        return Err(invalid());
    }
    let (curve_oid, _) = der_expect(params, TAG_OID).ok_or_else(invalid)?;
    Ok(EcPublic {
        curve: Curve::from_oid(curve_oid).ok_or_else(invalid)?,
        point: point.to_vec(),
    })
}

/// PKCS#8 `PrivateKeyInfo ::= SEQUENCE { version 0, SEQUENCE { algorithm OID, params },
/// privateKey OCTET STRING }` → (algorithm OID, params TLV bytes, private key DER).
fn pkcs8_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (body, _) = der_expect(der, TAG_SEQUENCE)?;
    let (version, rest) = der_expect(body, TAG_INTEGER)?;
    if version != [0] {
        return None;
    }
    let (algorithm, rest) = der_expect(rest, TAG_SEQUENCE)?;
    let (oid, params) = der_expect(algorithm, TAG_OID)?;
    let (key, _) = der_expect(rest, TAG_OCTET_STRING)?;
    Some((oid, params, key))
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { SEQUENCE { algorithm OID, params }, BIT STRING }`,
/// alone or inside a certificate's `tbsCertificate` → (OID, params TLV bytes, key bytes).
fn spki_or_certificate(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    spki(der).or_else(|| {
        let (certificate, _) = der_expect(der, TAG_SEQUENCE)?;
        let (tbs, _) = der_expect(certificate, TAG_SEQUENCE)?;
        let mut rest = tbs;
        if let Some((TAG_CONTEXT_0, _, after)) = der_next(rest) {
            rest = after; // version
        }
        // serialNumber, signature, issuer, validity, subject
        for _ in 0..5 {
            rest = der_next(rest)?.2;
        }
        let (tag, _, after) = der_next(rest)?;
        (tag == TAG_SEQUENCE).then_some(())?;
        spki(&rest[..rest.len() - after.len()])
    })
}

fn spki(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (body, _) = der_expect(der, TAG_SEQUENCE)?;
    let (algorithm, rest) = der_expect(body, TAG_SEQUENCE)?;
    let (oid, params) = der_expect(algorithm, TAG_OID)?;
    if params
        .first()
        .is_some_and(|tag| *tag != TAG_NULL && *tag != TAG_OID)
    {
        return None;
    }
    let (key, _) = der_expect(rest, TAG_BIT_STRING)?;
    Some((oid, params, bit_string(key)?))
}

/// The bytes of a BIT STRING with no unused bits.
fn bit_string(value: &[u8]) -> Option<&[u8]> {
    match value.split_first() {
        Some((0, bits)) => Some(bits),
        _ => None,
    }
}

/// The next TLV of `input` → (tag, value, rest). Definite lengths up to 4 bytes only.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let len_bytes = usize::from(first & 0x7f);
        if !(1..=4).contains(&len_bytes) || rest.len() < len_bytes {
            return None;
        }
        let len = rest[..len_bytes]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[len_bytes..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The next TLV of `input` if its tag is `tag` → (value, rest).
fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match der_next(input)? {
        (found, value, rest) if found == tag => Some((value, rest)),
        _ => None,
    }
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// The DER bytes of the first PEM block of `text` (Go `pem.Decode`), whatever its label.
fn pem_block(text: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(text).ok()?;
    let start = text.find("-----BEGIN ")?;
    let after_begin = &text[start + "-----BEGIN ".len()..];
    let label_end = after_begin.find("-----")?;
    let label = &after_begin[..label_end];
    let body = &after_begin[label_end + "-----".len()..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let body = &body[..end];
    if body.contains(':') {
        return None; // PEM headers: encrypted keys, which golang-jwt does not read either
    }
    base64_decode(body)
}

/// Standard base64 with padding; whitespace is skipped.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let symbols: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let data = symbols
        .strip_suffix(b"==")
        .or_else(|| symbols.strip_suffix(b"="))
        .unwrap_or(&symbols);
    if !symbols.len().is_multiple_of(4) || data.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= sextet(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;

    fn err_of(auth_token: &str) -> String {
        TokenConfig::parse(auth_token, 0).unwrap_err()
    }

    #[test]
    fn parse_simple_nop_and_bad_options() {
        assert_eq!(
            TokenConfig::parse("simple", 0).unwrap(),
            TokenConfig::Simple {
                ttl: Duration::from_secs(300)
            }
        );
        assert_eq!(
            TokenConfig::parse("simple", 7).unwrap(),
            TokenConfig::Simple {
                ttl: Duration::from_secs(7)
            }
        );
        // Options of simple tokens are parsed and ignored, as etcd does.
        assert!(TokenConfig::parse("simple,ttl=1s", 0).is_ok());
        assert_eq!(TokenConfig::parse("", 0).unwrap(), TokenConfig::Nop);
        for bad in [
            "bogus",
            "Simple",
            "jwt,sign-method",
            "jwt,a=b=c",
            "jwt,",
            "simple,x=1,x=2",
        ] {
            assert_eq!(err_of(bad), ERR_INVALID_AUTH_OPTS, "{bad}");
        }
    }

    #[test]
    fn parse_jwt_options() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "secret").unwrap();
        let key = key.display();
        let TokenConfig::Jwt(config) =
            TokenConfig::parse(&format!("jwt,sign-method=HS256,priv-key={key}"), 9).unwrap()
        else {
            panic!("not jwt");
        };
        assert_eq!(config.sign_method, SignMethod::HS256);
        assert_eq!(config.ttl, Duration::from_secs(JWT_TTL_DEFAULT_S));
        assert_eq!(config.private_key.as_deref(), Some(&b"secret"[..]));
        assert_eq!(config.public_key, None);
        assert!(!format!("{config:?}").contains("secret"));

        let TokenConfig::Jwt(config) = TokenConfig::parse(
            &format!("jwt,sign-method=HS256,priv-key={key},ttl=1h30m,unknown=1"),
            0,
        )
        .unwrap() else {
            panic!("not jwt");
        };
        assert_eq!(config.ttl, Duration::from_secs(5400));

        for bad in [
            format!("jwt,priv-key={key}"),
            format!("jwt,sign-method=,priv-key={key}"),
            format!("jwt,sign-method=hs256,priv-key={key}"),
            format!("jwt,sign-method=XS256,priv-key={key}"),
            format!("jwt,sign-method=HS256,priv-key={key},ttl=10"),
            format!("jwt,sign-method=HS256,priv-key={key},ttl=-5m"),
            "jwt,sign-method=RS256,priv-key=/nonexistent/k.pem".to_string(),
            "jwt,sign-method=RS256,pub-key=/nonexistent/k.pem".to_string(),
        ] {
            assert_eq!(err_of(&bad), ERR_INVALID_AUTH_OPTS, "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        let ok = |text: &str| parse_go_duration(text).unwrap();
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("10m"), Duration::from_secs(600));
        assert_eq!(ok("+1h2m3s"), Duration::from_secs(3723));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("1us"), Duration::from_micros(1));
        assert_eq!(ok("1µs"), Duration::from_micros(1));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        for bad in [
            "", "10", "m", ".s", "1x", "1.2.3s", "-1s", "3000000h", "1 s", "s1",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sign_method_names() {
        for method in SignMethod::ALL {
            assert_eq!(SignMethod::from_name(method.name()), Some(method));
        }
        assert_eq!(SignMethod::from_name("rs256"), None);
        assert_eq!(SignMethod::from_name(""), None);
    }

    #[test]
    fn simple_token_index_is_etcd_is_valid_simple_token() {
        assert_eq!(simple_token_index("abcDEF.42"), Some(42));
        assert_eq!(simple_token_index(".7"), Some(7));
        assert_eq!(simple_token_index("abc"), None);
        assert_eq!(simple_token_index("abc.1.2"), None);
        assert_eq!(simple_token_index("abc.x"), None);
        assert_eq!(simple_token_index("abc."), None);
        assert_eq!(simple_token_index("abc.-1"), None);
    }

    fn simple_tokens(ttl_s: u64) -> Tokens {
        Tokens::new(&TokenConfig::parse("simple", ttl_s).unwrap()).unwrap()
    }

    fn simple_of(tokens: &Tokens) -> &SimpleTokens {
        match &tokens.provider {
            Provider::Simple(simple) => simple,
            _ => panic!("not simple"),
        }
    }

    #[test]
    fn simple_prefix_is_16_letters() {
        let tokens = simple_tokens(0);
        let prefix = tokens.gen_prefix();
        assert_eq!(prefix.len(), SIMPLE_TOKEN_PREFIX_CHARS);
        assert!(prefix.bytes().all(|b| b.is_ascii_alphabetic()));
        assert_ne!(prefix, tokens.gen_prefix());
        assert_eq!(tokens.kind(), "simple");
    }

    #[test]
    fn simple_assign_info_and_idle_expiry() {
        let tokens = simple_tokens(10);
        tokens.enable();
        let simple = simple_of(&tokens);
        let t0 = Instant::now();
        let token = simple.assign("abcdefghijklmnop", 42, "alice", t0);
        assert_eq!(token, "abcdefghijklmnop.42");
        assert_eq!(simple_token_index(&token), Some(42));
        let alice = |revision| {
            Some(AuthInfo {
                username: "alice".to_string(),
                revision,
            })
        };
        assert_eq!(tokens.info(&token, 5), alice(5));
        // Used at 9 s: lives until 19 s.
        assert_eq!(
            simple.info(&token, 6, t0 + Duration::from_secs(9)),
            alice(6)
        );
        assert_eq!(
            simple.info(&token, 6, t0 + Duration::from_secs(19)),
            alice(6)
        );
        assert_eq!(simple.info(&token, 6, t0 + Duration::from_secs(30)), None);
        // Expired tokens are dropped for good.
        assert_eq!(simple.info(&token, 6, t0), None);
        assert_eq!(tokens.info("unknown.1", 1), None);
        assert_eq!(tokens.info("abcdefghijklmnop", 1), None);
    }

    #[test]
    fn simple_assign_purges_expired_tokens() {
        let tokens = simple_tokens(10);
        tokens.enable();
        let simple = simple_of(&tokens);
        let t0 = Instant::now();
        for index in 0..100 {
            simple.assign("p", index, "alice", t0);
        }
        simple.assign("p", 100, "bob", t0 + Duration::from_secs(11));
        assert_eq!(simple.lock().tokens.len(), 1);
    }

    #[test]
    fn simple_same_entry_twice_is_one_token() {
        let tokens = simple_tokens(10);
        tokens.enable();
        let first = tokens.assign("p", 3, "alice", 0).unwrap();
        let second = tokens.assign("p", 3, "alice", 0).unwrap();
        assert_eq!(first, second);
        assert_eq!(simple_of(&tokens).lock().tokens.len(), 1);
    }

    #[test]
    #[should_panic(expected = "already used")]
    fn simple_token_of_another_user_panics() {
        let tokens = simple_tokens(10);
        tokens.enable();
        tokens.assign("p", 3, "alice", 0).unwrap();
        let _ = tokens.assign("p", 3, "bob", 0);
    }

    #[test]
    fn simple_invalidate_user_and_disable() {
        let tokens = simple_tokens(0);
        // Disabled at first: the token is returned but not registered (etcd).
        let early = tokens.assign("p", 1, "alice", 1).unwrap();
        assert_eq!(tokens.info(&early, 1), None);

        tokens.enable();
        let a1 = tokens.assign("p", 2, "alice", 1).unwrap();
        let a2 = tokens.assign("q", 3, "alice", 1).unwrap();
        let b = tokens.assign("p", 4, "bob", 1).unwrap();
        tokens.invalidate_user("alice");
        assert_eq!(tokens.info(&a1, 1), None);
        assert_eq!(tokens.info(&a2, 1), None);
        assert_eq!(tokens.info(&b, 1).unwrap().username, "bob");

        tokens.disable();
        assert_eq!(tokens.info(&b, 1), None);
        tokens.enable();
        assert_eq!(tokens.info(&b, 1), None);
        let b2 = tokens.assign("p", 5, "bob", 1).unwrap();
        assert_eq!(tokens.info(&b2, 9).unwrap().revision, 9);
    }

    #[test]
    fn nop_provider() {
        let tokens = Tokens::new(&TokenConfig::Nop).unwrap();
        assert_eq!(tokens.kind(), "nop");
        assert_eq!(tokens.gen_prefix(), "");
        let err = tokens.assign("", 1, "alice", 1).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        assert_eq!(
            err.message,
            "etcdserver: authentication failed, invalid user ID or password"
        );
        assert_eq!(tokens.info("x.1", 1), None);
    }

    // ---- JWT, with keys made by the openssl CLI ----

    /// Key files made once for all tests: name → path.
    fn keys() -> &'static Path {
        static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
        DIR.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let run = |args: &[&str]| {
                let out = Command::new("openssl")
                    .args(args)
                    .current_dir(dir.path())
                    .output()
                    .expect("openssl runs");
                assert!(out.status.success(), "openssl {args:?}: {out:?}");
            };
            // RSA: PKCS#1 and PKCS#8 private keys, SubjectPublicKeyInfo public keys.
            run(&["genrsa", "-traditional", "-out", "rsa1.pem", "2048"]);
            run(&["rsa", "-in", "rsa1.pem", "-pubout", "-out", "rsa1.pub"]);
            run(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa2.pem",
            ]);
            run(&["pkey", "-in", "rsa2.pem", "-pubout", "-out", "rsa2.pub"]);
            run(&[
                "req",
                "-new",
                "-x509",
                "-key",
                "rsa1.pem",
                "-subj",
                "/CN=cairn",
                "-days",
                "1",
                "-out",
                "rsa1.crt",
            ]);
            // EC: SEC1 and PKCS#8 private keys.
            run(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec1.pem",
            ]);
            run(&["ec", "-in", "ec1.pem", "-pubout", "-out", "ec1.pub"]);
            run(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ec2.pem",
            ]);
            run(&["pkey", "-in", "ec2.pem", "-pubout", "-out", "ec2.pub"]);
            run(&[
                "ecparam",
                "-name",
                "secp384r1",
                "-genkey",
                "-noout",
                "-out",
                "ec384.pem",
            ]);
            run(&["ec", "-in", "ec384.pem", "-pubout", "-out", "ec384.pub"]);
            run(&[
                "req",
                "-new",
                "-x509",
                "-key",
                "ec1.pem",
                "-subj",
                "/CN=cairn",
                "-days",
                "1",
                "-out",
                "ec1.crt",
            ]);
            std::fs::write(dir.path().join("garbage.pem"), "not a key").unwrap();
            std::fs::write(dir.path().join("hmac.key"), "a shared secret").unwrap();
            dir
        })
        .path()
    }

    fn key(name: &str) -> PathBuf {
        keys().join(name)
    }

    /// `Tokens::new` for `jwt,sign-method=METHOD[,priv-key=..][,pub-key=..][,EXTRA]`.
    fn jwt(method: &str, private: Option<&str>, public: Option<&str>) -> Result<Tokens, String> {
        let mut spec = format!("jwt,sign-method={method}");
        if let Some(name) = private {
            spec += &format!(",priv-key={}", key(name).display());
        }
        if let Some(name) = public {
            spec += &format!(",pub-key={}", key(name).display());
        }
        Tokens::new(&TokenConfig::parse(&spec, 0)?)
    }

    fn round_trip(tokens: &Tokens) {
        assert_eq!(tokens.kind(), "jwt");
        assert_eq!(tokens.gen_prefix(), "");
        let token = tokens.assign("", 7, "alice", 12).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(
            tokens.info(&token, 99),
            Some(AuthInfo {
                username: "alice".to_string(),
                revision: 12
            })
        );
        // invalidate_user, disable: no effect on JWTs.
        tokens.invalidate_user("alice");
        tokens.disable();
        assert!(tokens.info(&token, 99).is_some());
        assert_eq!(tokens.info("not.a.jwt", 1), None);
        assert_eq!(tokens.info(&format!("{token}x"), 1), None);
    }

    #[test]
    fn jwt_round_trips() {
        round_trip(&jwt("RS256", Some("rsa1.pem"), None).unwrap());
        round_trip(&jwt("RS256", Some("rsa1.pem"), Some("rsa1.pub")).unwrap());
        round_trip(&jwt("RS384", Some("rsa2.pem"), Some("rsa2.pub")).unwrap());
        round_trip(&jwt("RS512", Some("rsa2.pem"), None).unwrap());
        round_trip(&jwt("PS256", Some("rsa1.pem"), Some("rsa1.crt")).unwrap());
        round_trip(&jwt("PS512", Some("rsa2.pem"), None).unwrap());
        round_trip(&jwt("ES256", Some("ec1.pem"), Some("ec1.pub")).unwrap());
        round_trip(&jwt("ES256", Some("ec2.pem"), Some("ec2.pub")).unwrap());
        round_trip(&jwt("ES256", Some("ec1.pem"), Some("ec1.crt")).unwrap());
        round_trip(&jwt("ES384", Some("ec384.pem"), None).unwrap());
        round_trip(&jwt("HS256", Some("hmac.key"), None).unwrap());
        round_trip(&jwt("HS512", Some("hmac.key"), None).unwrap());
    }

    #[test]
    fn jwt_claims_are_etcds() {
        let tokens = jwt("HS256", Some("hmac.key"), None).unwrap();
        let token = tokens.assign("", 1, "alice", 3).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.insecure_disable_signature_validation();
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b""),
            &validation,
        )
        .unwrap()
        .claims;
        let object = claims.as_object().unwrap();
        assert_eq!(object.len(), 3);
        assert_eq!(claims["username"], "alice");
        assert_eq!(claims["revision"], 3);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp.abs_diff(now + JWT_TTL_DEFAULT_S) <= 2, "{exp} vs {now}");
    }

    #[test]
    fn jwt_refuses_other_keys_methods_and_expired_tokens() {
        let rsa1 = jwt("RS256", Some("rsa1.pem"), None).unwrap();
        let rsa2 = jwt("RS256", Some("rsa2.pem"), None).unwrap();
        let token = rsa2.assign("", 1, "alice", 1).unwrap();
        assert_eq!(rsa1.info(&token, 1), None);
        let ec1 = jwt("ES256", Some("ec1.pem"), None).unwrap();
        let ec2 = jwt("ES256", Some("ec2.pem"), None).unwrap();
        assert_eq!(ec1.info(&ec2.assign("", 1, "alice", 1).unwrap(), 1), None);
        // Same key, another method: refused (etcd: "invalid signing method").
        let ps = jwt("PS256", Some("rsa2.pem"), None).unwrap();
        assert_eq!(ps.info(&token, 1), None);

        let Provider::Jwt(inner) = &rsa1.provider else {
            unreachable!()
        };
        let past = SystemTime::now() - inner.ttl - Duration::from_secs(2);
        let expired = inner.assign("alice", 1, past).unwrap();
        assert_eq!(rsa1.info(&expired, 1), None);
        let fresh = inner
            .assign("alice", 1, past + Duration::from_secs(4))
            .unwrap();
        assert!(rsa1.info(&fresh, 1).is_some());
    }

    #[test]
    fn jwt_verify_only() {
        let signer = jwt("ES256", Some("ec1.pem"), None).unwrap();
        let verifier = jwt("ES256", None, Some("ec1.pub")).unwrap();
        let token = signer.assign("", 1, "alice", 4).unwrap();
        assert_eq!(verifier.info(&token, 1).unwrap().revision, 4);
        let err = verifier.assign("", 1, "alice", 4).unwrap_err();
        assert_eq!(err.code, Code::Unknown);
        assert_eq!(err.message, ERR_VERIFY_ONLY);

        let rsa = jwt("RS256", None, Some("rsa1.crt")).unwrap();
        let signer = jwt("RS256", Some("rsa1.pem"), None).unwrap();
        assert!(rsa
            .info(&signer.assign("", 1, "a", 1).unwrap(), 1)
            .is_some());
        assert_eq!(
            rsa.assign("", 1, "a", 1).unwrap_err().message,
            ERR_VERIFY_ONLY
        );
    }

    #[test]
    fn jwt_key_errors() {
        let err = |method, private, public| jwt(method, private, public).err().unwrap();
        assert_eq!(err("RS256", None, None), ERR_MISSING_KEY);
        assert_eq!(err("ES256", None, None), ERR_MISSING_KEY);
        assert_eq!(err("HS256", None, Some("hmac.key")), ERR_MISSING_KEY);
        assert_eq!(err("RS256", Some("garbage.pem"), None), ERR_KEY_MUST_BE_PEM);
        assert_eq!(err("RS256", None, Some("garbage.pem")), ERR_KEY_MUST_BE_PEM);
        assert_eq!(err("RS256", Some("ec1.pem"), None), ERR_NOT_RSA_PRIVATE_KEY);
        assert_eq!(err("RS256", Some("ec2.pem"), None), ERR_NOT_RSA_PRIVATE_KEY);
        assert_eq!(err("RS256", None, Some("ec1.pub")), ERR_NOT_RSA_PUBLIC_KEY);
        assert_eq!(err("ES256", Some("rsa1.pem"), None), ERR_NOT_EC_PRIVATE_KEY);
        assert_eq!(err("ES256", Some("rsa2.pem"), None), ERR_NOT_EC_PRIVATE_KEY);
        assert_eq!(err("ES256", None, Some("rsa1.pub")), ERR_NOT_EC_PUBLIC_KEY);
        assert_eq!(
            err("RS256", Some("rsa1.pem"), Some("rsa2.pub")),
            ERR_KEY_MISMATCH
        );
        assert_eq!(
            err("ES256", Some("ec1.pem"), Some("ec2.pub")),
            ERR_KEY_MISMATCH
        );
        assert_eq!(
            err("EdDSA", Some("hmac.key"), None),
            "unsupported signing method: *jwt.SigningMethodEd25519"
        );
        assert_eq!(
            err("none", None, None),
            "unsupported signing method: *jwt.signingMethodNone"
        );
        assert!(err("ES512", Some("ec1.pem"), None).contains("ES512"));
        assert!(err("ES256", Some("ec384.pem"), None).contains("P-256"));
        assert!(err("ES384", None, Some("ec1.pub")).contains("P-384"));
    }

    #[test]
    fn der_and_base64_helpers() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==\n").unwrap(), b"M");
        assert_eq!(base64_decode("TQ="), None);
        assert_eq!(base64_decode("T!=="), None);
        let long = vec![7u8; 300];
        let tlv = der_tlv(TAG_OCTET_STRING, &long);
        assert_eq!(&tlv[..4], &[TAG_OCTET_STRING, 0x82, 0x01, 0x2c]);
        assert_eq!(der_next(&tlv), Some((TAG_OCTET_STRING, &long[..], &[][..])));
        assert_eq!(der_next(&tlv[..100]), None);
        assert_eq!(der_tlv(TAG_INTEGER, &[0]), vec![TAG_INTEGER, 1, 0]);
    }
}
