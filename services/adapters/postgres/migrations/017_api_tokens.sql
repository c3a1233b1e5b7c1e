-- Issue 13: bearer tokens of the HTTP read API (services/api/auth.py). A token is the text
-- `vl_<token_id>_<secret>`; the table keeps its public id and the SHA-256 of its secret, never the
-- secret itself, so a copy of the database (a backup, an export, a reader's SELECT) lets nobody in.
--
-- SHA-256 and not a slow password hash (bcrypt, scrypt, argon2): the secret is 32 random bytes
-- from secrets.token_urlsafe(32), 256 bits that cannot be guessed or brute-forced from the hash,
-- whereas a slow hash exists to protect low-entropy passwords and would cost every API request
-- tens of milliseconds of CPU.
--
-- Written only by the owner's login (`vote-ledger api token issue|revoke`, VOTE_LEDGER_PG_DSN, as
-- `db migrate`); the API reads it as vote_ledger_reader. No service role may write it: a service
-- that could insert a row could mint itself a token, and one that could update could un-revoke.
CREATE TABLE IF NOT EXISTS api_tokens (
    -- 12 lowercase hex characters: shown by `api token list`, named by `api token revoke`.
    token_id      text        PRIMARY KEY CHECK (token_id ~ '^[0-9a-f]{12}$'),
    -- Who or what holds it (a dashboard, a person): for the list and the logs, never for access.
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- ops: aggregates and status; auditor: also a control number's history and the events.
    role          text        NOT NULL CHECK (role IN ('ops', 'auditor')),
    -- SHA-256 of the secret part: exactly 32 bytes, so a truncated or plain-text value cannot be stored.
    secret_sha256 bytea       NOT NULL CHECK (octet_length(secret_sha256) = 32),
    issued_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- NULL: never expires. A token that expired before it was issued would be a typing error.
    expires_at    timestamptz CHECK (expires_at IS NULL OR expires_at > issued_at),
    -- NULL: in force. Revocation is a timestamp rather than a DELETE, so `list` shows what was
    -- revoked and when (an operator's audit trail), and a revoked id is never issued again.
    revoked_at    timestamptz CHECK (revoked_at IS NULL OR revoked_at >= issued_at)
);

-- The reader (the API's login) looks tokens up; nobody else but the owner touches the table.
REVOKE ALL ON api_tokens FROM PUBLIC, vote_ledger_ledger, vote_ledger_projector, vote_ledger_reader;
GRANT SELECT ON api_tokens TO vote_ledger_reader;

-- A token is immutable but for its revocation, and a revocation is final: revoked_at may only go from
-- NULL to a time, and no other column may change (the owner's tools never change one). Otherwise a
-- mistaken or malicious UPDATE could bring a leaked token back: clearing revoked_at, moving expires_at
-- (or issued_at, which bounds it) to revive an expired token, or widening its role.
CREATE OR REPLACE FUNCTION api_token_revocation_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'api token % was revoked at %; a revocation is final', OLD.token_id, OLD.revoked_at
            USING ERRCODE = 'integrity_constraint_violation', HINT = 'issue a new token; see 017_api_tokens.sql';
    END IF;
    IF (NEW.token_id, NEW.name, NEW.role, NEW.secret_sha256, NEW.issued_at, NEW.expires_at)
        IS DISTINCT FROM (OLD.token_id, OLD.name, OLD.role, OLD.secret_sha256, OLD.issued_at, OLD.expires_at) THEN
        RAISE EXCEPTION 'api token % may only be revoked, not changed', OLD.token_id
            USING ERRCODE = 'integrity_constraint_violation', HINT = 'issue a new token; see 017_api_tokens.sql';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION api_token_revocation_final() FROM PUBLIC;

DROP TRIGGER IF EXISTS api_tokens_revocation_final ON api_tokens;
CREATE TRIGGER api_tokens_revocation_final BEFORE UPDATE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_token_revocation_final();
