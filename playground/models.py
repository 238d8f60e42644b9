"""Conversations in the playground: a person's own, or a team's shared room."""

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """A chat with one model; with a team it is a room that every member of the team shares."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    team = models.ForeignKey("console.Team", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="rooms")
    title = models.CharField(max_length=200)
    # A name, not a foreign key: a conversation outlives its model (it then answers with an error).
    model_name = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(default=0.7)
    top_p = models.FloatField(default=0.95)
    max_tokens = models.PositiveIntegerField(default=256)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    USER, ASSISTANT = "user", "assistant"
    OK, STOPPED, ERROR = "ok", "stopped", "error"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               help_text="who wrote it; empty for the model's answers")
    role = models.CharField(max_length=10, choices=[(USER, "user"), (ASSISTANT, "assistant")])
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, default=OK,
                              choices=[(OK, "ok"), (STOPPED, "stopped"), (ERROR, "error")])
    error = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True, help_text="the answer's usage row")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
