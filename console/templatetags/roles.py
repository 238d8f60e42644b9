"""Role checks for templates: `{% load roles %}{% if user|can_audit %}…{% endif %}`."""

from django import template

from console import roles

register = template.Library()


@register.filter
def can_audit(user) -> bool:
    return roles.can_audit(user)
