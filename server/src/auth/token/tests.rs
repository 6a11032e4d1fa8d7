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
            "rsa",
            "-in",
            "rsa1.pem",
            "-RSAPublicKey_out",
            "-out",
            "rsa1.pkcs1",
        ]);
        run(&[
            "rsa",
            "-in",
            "rsa1.pem",
            "-traditional",
            "-aes128",
            "-passout",
            "pass:x",
            "-out",
            "rsa1.enc.pem",
        ]);
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
    round_trip(&jwt("PS384", Some("rsa1.pem"), Some("rsa1.pkcs1")).unwrap());
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
    let pkcs1 = jwt("RS256", None, Some("rsa1.pkcs1")).unwrap();
    assert!(pkcs1
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
        err("RS256", Some("rsa2.pem"), Some("rsa1.pkcs1")),
        ERR_KEY_MISMATCH
    );
    assert_eq!(
        err("ES256", Some("ec2.pem"), Some("ec1.crt")),
        ERR_KEY_MISMATCH
    );
    assert_eq!(
        err("RS256", Some("rsa1.enc.pem"), None),
        ERR_KEY_MUST_BE_PEM
    );
    assert_eq!(err("ES256", None, Some("rsa1.crt")), ERR_NOT_EC_PUBLIC_KEY);
    assert_eq!(err("RS256", None, Some("ec1.crt")), ERR_NOT_RSA_PUBLIC_KEY);
    assert_eq!(
        err("ES256", None, Some("rsa1.pkcs1")),
        ERR_NOT_EC_PUBLIC_KEY
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
fn pem_blocks_are_read_as_go_reads_them() {
    let block = "-----BEGIN ANY LABEL-----\nTWFu\n-----END ANY LABEL-----\n";
    assert_eq!(keys::pem_block(block.as_bytes()).unwrap(), b"Man");
    let around = format!("text before\n{block}text after");
    assert_eq!(keys::pem_block(around.as_bytes()).unwrap(), b"Man");
    let two = format!("{block}-----BEGIN B-----\nTWE=\n-----END B-----\n");
    assert_eq!(keys::pem_block(two.as_bytes()).unwrap(), b"Man");
    for bad in [
        "not a key",
        "-----BEGIN A-----\nTWFu\n",
        "-----BEGIN A-----\nTWFu\n-----END B-----\n",
        "-----BEGIN A-----\nT!==\n-----END A-----\n",
        "-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nTWFu\n-----END A-----\n",
    ] {
        assert_eq!(
            keys::pem_block(bad.as_bytes()).unwrap_err(),
            ERR_KEY_MUST_BE_PEM,
            "{bad:?}"
        );
    }
}
