"""Playground operations: conversations, their settings and messages, and the request an answer sends."""

from django.db import transaction

from playground.models import Conversation, Message

DEFAULT_TITLE = "New room"


class NotATeamMember(Exception):
    """A person tried to open a room for a team they are not in."""


@transaction.atomic
def create_conversation(*, owner, model_name: str, title: str = "", team=None, system_prompt: str = "",
                        temperature: float = 0.7, top_p: float = 0.95, max_tokens: int = 256) -> Conversation:
    if team is not None and not team.members.filter(pk=owner.pk).exists():
        raise NotATeamMember(f"{owner.username} is not a member of {team.name}.")
    return Conversation.objects.create(
        owner=owner, team=team, title=title.strip() or DEFAULT_TITLE, model_name=model_name,
        system_prompt=system_prompt, temperature=temperature, top_p=top_p, max_tokens=max_tokens)


def rename_conversation(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip() or DEFAULT_TITLE
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def configure_conversation(*, conversation: Conversation, model_name: str, system_prompt: str,
                           temperature: float, top_p: float, max_tokens: int) -> Conversation:
    conversation.model_name = model_name
    conversation.system_prompt = system_prompt
    conversation.temperature, conversation.top_p, conversation.max_tokens = temperature, top_p, max_tokens
    conversation.save()
    return conversation


def delete_conversation(*, conversation: Conversation) -> None:
    conversation.delete()


@transaction.atomic
def add_message(*, conversation_id: int, role: str, content: str, author=None, status: str = Message.OK,
                error: str = "", request_id: str = "") -> Message:
    """Saves a message (`author` None: the model's answer) and moves its conversation to the top."""
    message = Message.objects.create(conversation_id=conversation_id, author=author, role=role, content=content,
                                     status=status, error=error, request_id=request_id)
    Conversation.objects.get(pk=conversation_id).save(update_fields=["updated_at"])
    return message


def chat_request(*, conversation_id: int) -> dict:
    """The chat completion request for the conversation's next answer: its settings, the system
    prompt and every message so far (failed answers left out)."""
    conversation = Conversation.objects.get(pk=conversation_id)
    messages = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
    for message in conversation.messages.exclude(status=Message.ERROR).exclude(content=""):
        messages.append({"role": message.role, "content": message.content})
    return {"model": conversation.model_name, "messages": messages, "stream": True,
            "temperature": conversation.temperature, "top_p": conversation.top_p,
            "max_tokens": conversation.max_tokens}
