"""What the doors' tests share."""

import time

from console.models import UsageRecord

# Long enough (over a minute of work) that a cancel that did not reach the worker would keep
# the model busy and make the next request wait past NEXT_DEADLINE seconds.
LONG_PROMPT = "1, 2, 3, 4, 5, 6, 7,"
LONG_TOKENS = 3000
NEXT_DEADLINE = 45


def wait_for_row(**filters) -> UsageRecord:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        row = UsageRecord.objects.filter(**filters).first()
        if row:
            return row
        time.sleep(0.1)
    raise AssertionError(f"no usage row with {filters}")
