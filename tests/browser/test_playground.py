"""The playground in Chromium against the real stack: a member chats, stops an answer and rides out
a dropped socket; two members of a team share a room and both watch the answer stream; markup in
messages stays text."""

import pytest
from playwright.sync_api import expect

from console.models import Team
from playground import services
from playground.models import Message
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

LIVE_TEXT = "() => { const el = document.querySelector('.msg.live .md'); return !!el && el.textContent.length > 0; }"

# Markup that would run script or load an image if it reached the page as HTML. The model's
# earlier answer is saved as such (the page renders history and live text with one function),
# and the member's message carries it too, so the check does not depend on what a small model says.
INJECTION = '<script>window.pwned = 1</script> and <img src="/x" onerror="window.pwned = 2">'
ANSWER = f"""Here is what you asked:

- one **bold** point
- a second point

| model | size |
|---|---|
| gemma3-270m | 253 MB |

```python
print("hello")
```

{INJECTION} [a link](javascript:window.pwned=3)"""


def test_a_member_starts_a_conversation_watches_tokens_arrive_and_stops(new_page, member, default_model):
    page = new_page(member)
    sockets = []  # the page's sockets pass through Playwright, which can drop one

    def through(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket("**/ws/playground/**", through)
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Title").fill("Counting")
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill("2000")
    page.get_by_role("button", name="New room").click()
    expect(page.get_by_role("heading", name="Counting")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()

    page.get_by_label("Message").fill("Continue the list: 1, 2, 3, 4, 5,")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(LIVE_TEXT, timeout=120_000)  # text on the page, the answer not done
    expect(page.locator(".msg.live")).to_have_attribute("data-status", "streaming")
    page.get_by_role("button", name="Stop").click()

    stopped = page.locator(".msg-assistant[data-status=stopped]")
    expect(stopped).to_be_visible(timeout=60_000)
    expect(stopped).to_contain_text("stopped")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    answer = Message.objects.get(role=Message.ASSISTANT)
    assert answer.status == Message.STOPPED and answer.content
    expect(page.locator(".msg-user .author")).to_have_text("bob")

    # The socket drops: the page reconnects by itself and shows the room as it was.
    sockets[-1].close()
    expect(page.locator("#connection")).to_contain_text("reconnecting", timeout=20_000)
    expect(page.locator("#connection")).to_have_text("Connected", timeout=30_000)
    expect(page.locator(".msg-assistant[data-status=stopped]")).to_have_count(1)
    assert len(sockets) == 2


def test_two_members_share_a_room_and_markup_stays_text(new_page, member, default_model, django_user_model):
    teammate = django_user_model.objects.create_user("erin", "erin@example.org", "password")
    team = Team.objects.create(name="research")
    team.members.add(member, teammate)
    services.create_conversation(owner=member, title="Release notes draft", model_name=default_model.name)
    room = services.create_conversation(owner=member, team=team, title="Research room", model_name=default_model.name,
                                        temperature=0, max_tokens=20, system_prompt="Answer briefly.")
    services.add_message(conversation_id=room.pk, role=Message.USER, author=teammate,
                         content="Show me a list, a table and some code.")
    services.add_message(conversation_id=room.pk, role=Message.ASSISTANT, content=ANSWER)

    bob, erin = new_page(member, height=1000), new_page(teammate)
    for page in (bob, erin):
        page.goto(f"/playground/rooms/{room.pk}/")
    for page in (bob, erin):
        expect(page.locator("#present")).to_have_text("Here: bob, erin", timeout=20_000)

    bob.get_by_label("Message").fill(f"Repeat after me: {INJECTION}")
    bob.get_by_role("button", name="Send").click()
    for page in (bob, erin):  # each sees the answer's text while it is still being generated
        page.wait_for_function(LIVE_TEXT, timeout=120_000)
    for page in (bob, erin):
        expect(page.locator(".msg-assistant[data-id]")).to_have_count(2, timeout=240_000)
        expect(page.locator(".msg-user .author")).to_have_text(["erin", "bob"])

    for page in (bob, erin):
        messages = page.locator("#messages")
        assert page.evaluate("window.pwned") is None
        assert messages.locator("script, img, [onerror]").count() == 0
        expect(messages.locator(".msg-user").last).to_contain_text('<img src="/x" onerror="window.pwned = 2">')
        expect(messages.locator(".msg-assistant").first).to_contain_text("<script>window.pwned = 1</script>")
        assert messages.locator("a[href^=javascript]").count() == 0
        expect(messages.locator("table td").first).to_have_text("gemma3-270m")
        expect(messages.locator("pre code").first).to_have_text('print("hello")')
        expect(messages.locator("li").first).to_contain_text("one bold point")
    screenshot(bob, "room")

    bob.get_by_role("link", name="Playground").click()
    expect(bob.get_by_role("link", name="Research room")).to_be_visible()
    screenshot(bob, "playground")
