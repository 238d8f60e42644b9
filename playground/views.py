"""The playground's pages: the conversation list and a room. The chat itself runs over the
room's WebSocket (playground.consumers); these views manage conversations and their settings."""

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.access import members_only
from playground import selectors, services
from playground.forms import NewConversationForm, RenameForm, SettingsForm
from playground.models import Conversation


def _conversation(request, pk: int) -> Conversation:
    """404 when there is none, 403 for people outside it."""
    conversation = get_object_or_404(Conversation.objects.select_related("owner", "team"), pk=pk)
    if not selectors.can_enter(user=request.user, conversation=conversation):
        raise PermissionDenied("This room belongs to a team you are not in.")
    return conversation


def _index(request, form, status=200):
    return render(request, "playground/index.html", {
        "conversations": selectors.visible_conversations(user=request.user),
        "form": form,
    }, status=status)


@members_only
def index(request):
    if request.method != "POST":
        return _index(request, NewConversationForm(user=request.user))
    form = NewConversationForm(request.POST, user=request.user)
    if not form.is_valid():
        return _index(request, form, status=400)
    conversation = services.create_conversation(owner=request.user, **form.cleaned_data)
    return redirect("playground:room", pk=conversation.pk)


@members_only
def room(request, pk):
    conversation = _conversation(request, pk)
    return render(request, "playground/room.html", {
        "conversation": conversation,
        "settings_form": SettingsForm(instance=conversation),
    })


@members_only
@require_POST
def rename(request, pk):
    conversation = _conversation(request, pk)
    form = RenameForm(request.POST)
    if form.is_valid():
        services.rename_conversation(conversation=conversation, title=form.cleaned_data["title"])
    if request.htmx:
        return render(request, "playground/_conversation_row.html", {"conversation": conversation})
    return redirect("playground:index")


@members_only
@require_POST
def delete(request, pk):
    conversation = _conversation(request, pk)
    if conversation.owner_id != request.user.id:
        raise PermissionDenied("Only the one who opened the room can delete it.")
    services.delete_conversation(conversation=conversation)
    if request.htmx:
        return HttpResponse("")
    return redirect("playground:index")


@members_only
@require_POST
def configure(request, pk):
    conversation = _conversation(request, pk)
    form = SettingsForm(request.POST, instance=conversation)
    saved = form.is_valid()
    if saved:
        services.configure_conversation(conversation=conversation, **form.cleaned_data)
    context = {"conversation": conversation, "settings_form": form, "saved": saved}
    if request.htmx:  # htmx swaps only 2xx answers: the form comes back with its errors
        return render(request, "playground/_settings.html", context)
    return redirect("playground:room", pk=pk) if saved else render(request, "playground/room.html", context, status=400)
