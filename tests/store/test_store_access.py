"""Tokens are shown once and stored hashed, verify until revoked, and every change is in the audit log."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import MetaData, select

from psg.errors import PSGError
from store import Store
from store.access_store import UnknownToken


def test_token_is_stored_hashed_and_verifies_until_revoked(store: Store) -> None:
    token, record = store.create_token("night-nurse", "nurse")
    assert token.startswith("slm_") and len(token) > 40
    assert (record["name"], record["role"], record["revoked_at"]) == ("night-nurse", "nurse", None)
    tables = MetaData()
    tables.reflect(store.engine)
    with store.engine.connect() as db:  # every row of every table, on either backend
        stored = db.execute(select(tables.tables["api_tokens"].c.token_hash)).all()
        dump = "\n".join(repr(row) for table in tables.sorted_tables for row in db.execute(select(table)))
    assert [tuple(row) for row in stored] == [(hashlib.sha256(token.encode()).hexdigest(),)]
    assert token not in dump  # the secret itself is nowhere in the database
    verified = store.verify_token(token)
    assert verified is not None and verified["role"] == "nurse" and verified["last_used_at"] is None
    assert store.tokens()[0]["last_used_at"] is not None
    assert store.verify_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify_token("not-a-token") is None
    store.revoke_token(record["id"], by="admin-1")
    assert store.verify_token(token) is None
    actions = [(e["actor"], e["action"], e["target"]) for e in store.audit_log()]
    assert actions == [
        ("admin-1", "revoke_token", f"token {record['id']}"),
        ("cli", "create_token", f"token {record['id']}"),
    ]


def test_bad_token_fields_and_unknown_ids(store: Store) -> None:
    with pytest.raises(PSGError, match="role 'root': expected one of viewer, nurse, admin"):
        store.create_token("x", "root")
    with pytest.raises(PSGError, match="name '': expected 1-128 characters"):
        store.create_token("", "viewer")
    with pytest.raises(UnknownToken, match="token 99: no such token"):
        store.revoke_token(99)


def test_audit_log_pages_newest_first(store: Store) -> None:
    for i in range(5):
        store.audit("ann", "admin", "note", f"t{i}")
    page = store.audit_log(limit=2)
    assert [e["target"] for e in page] == ["t4", "t3"]
    assert [e["target"] for e in store.audit_log(limit=10, before_id=page[-1]["id"])] == ["t2", "t1", "t0"]
