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
//!
//! The JWT key files are read in `keys` (PEM; PKCS#1, PKCS#8 and SEC1 private keys;
//! SubjectPublicKeyInfo, certificate and PKCS#1 public keys), with golang-jwt's error texts.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use net::{Code, Status};
use rand::Rng;
use serde::Serialize;

use crate::auth::AuthInfo;

mod keys;
#[cfg(test)]
mod tests;

use keys::{ec_private_key, ec_public_key, rsa_private_key, rsa_public_key, Curve};

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
        Some(text) => crate::config::values::parse_go_duration(text)
            .map_err(|e| format!("ttl={text}: {e}"))?,
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
                (None, Some(public)) => Ok((None, DecodingKey::from_rsa_der(&public.pkcs1))),
                (Some(private), public) => {
                    if public.is_some_and(|p| p != private.public) {
                        return Err(ERR_KEY_MISMATCH.to_string());
                    }
                    Ok((
                        Some(EncodingKey::from_rsa_der(&private.pkcs1)),
                        DecodingKey::from_rsa_der(&private.public.pkcs1),
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
