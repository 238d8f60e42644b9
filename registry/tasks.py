from celery import shared_task

from registry import services


@shared_task(name="registry.pull", ignore_result=True)
def pull_model(*, pull_id: str, remote_key: str = "") -> None:
    """Runs on the `jobs` queue; progress goes to the Pull row."""
    from core.workers import worker_name

    services.run_pull(pull_id=pull_id, remote_key=remote_key, worker=worker_name())


@shared_task(name="registry.check", ignore_result=True)
def check_model(*, check_id: str) -> None:
    """Runs on the `jobs` queue; progress and result go to the Check row."""
    from core.workers import worker_name

    services.run_check(check_id=check_id, worker=worker_name())
