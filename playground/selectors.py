"""Reads for the playground: who may enter which conversation, and what a room holds."""

from django.db.models import Q, QuerySet

from console import roles
from console.models import Team
from playground.models import Conversation, Message
from registry.models import Model


def visible_conversations(*, user) -> QuerySet[Conversation]:
    """A person's own conversations and the rooms of their teams, the latest first."""
    return (Conversation.objects.filter(Q(owner=user) | Q(team__members=user)).distinct()
            .select_related("owner", "team"))


def can_enter(*, user, conversation: Conversation) -> bool:
    """The owner, and the members of the room's team (an active, signed-in admin or member:
    auditors see no prompts)."""
    if roles.role_of(user) not in (roles.ADMIN, roles.MEMBER):
        return False
    if conversation.owner_id == user.id:
        return True
    return conversation.team_id is not None and conversation.team.members.filter(pk=user.pk).exists()


def enterable(*, user, pk: int) -> Conversation | None:
    """The conversation if `user` may enter it, else None (also when there is none)."""
    conversation = Conversation.objects.select_related("team").filter(pk=pk).first()
    if conversation is None or not can_enter(user=user, conversation=conversation):
        return None
    return conversation


def history(*, conversation_id: int) -> QuerySet[Message]:
    return Message.objects.filter(conversation_id=conversation_id).select_related("author")


def chat_models() -> QuerySet[Model]:
    """Models a conversation can talk to: those with an active version."""
    return Model.objects.filter(active_version__isnull=False).order_by("name")


def teams_of(*, user) -> QuerySet[Team]:
    return Team.objects.filter(members=user)
