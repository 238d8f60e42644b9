"""Content logging: off by default; when on, prompts and answers are stored encrypted, expire, and
start-up fails without a key."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet

from audit import services
from audit.models import AuditContent, AuditEvent
from inference.services import ApiCall, finish_request

pytestmark = pytest.mark.django_db

SECRET = "the launch code is 0000"


def answered_call(member_key) -> ApiCall:
    call = ApiCall(endpoint="/v1/chat/completions", api_key=member_key.key, model_name="gemma3-270m")
    call.prompt, call.answer = [{"role": "user", "content": SECRET}], ["Noted", "."]
    return call


def test_content_is_not_stored_by_default(member_key):
    finish_request(call=answered_call(member_key))

    assert not AuditContent.objects.exists()
    assert SECRET not in AuditEvent.objects.get(action="request.chat").body


def test_content_is_stored_encrypted_when_turned_on(settings, member_key):
    settings.LANTHORN_AUDIT_CONTENT, settings.LANTHORN_CONTENT_KEY = True, Fernet.generate_key().decode()

    finish_request(call=answered_call(member_key))

    event = AuditEvent.objects.get(action="request.chat")
    stored = AuditContent.objects.get(seq=event.seq)
    assert SECRET not in stored.token and SECRET not in event.body
    assert event.content_digest == services.chain.sha256(stored.token)
    assert services.decrypt(stored.token) == {"prompt": [{"role": "user", "content": SECRET}], "answer": "Noted."}


def test_stored_content_expires_after_its_retention(settings, member_key):
    settings.LANTHORN_AUDIT_CONTENT, settings.LANTHORN_CONTENT_KEY = True, Fernet.generate_key().decode()
    finish_request(call=answered_call(member_key))
    AuditContent.objects.update(time=AuditContent.objects.get().time - timedelta(days=31))

    assert services.expire_content() == 1
    assert services.verify_trail().ok  # the chain does not include the content itself


def test_start_up_fails_when_content_logging_is_on_without_a_key(tmp_path):
    env = {**os.environ, "LANTHORN_HOME": str(tmp_path), "LANTHORN_AUDIT_CONTENT": "true", "LANTHORN_CONTENT_KEY": ""}

    result = subprocess.run([sys.executable, "-m", "lanthorn.cli", "audit", "verify"], env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "LANTHORN_AUDIT_CONTENT=true needs LANTHORN_CONTENT_KEY" in result.stderr
