from celery import shared_task

from inference import embeddings, worker


@shared_task(name="inference.generate", ignore_result=True)
def generate(*, request_id: str, reply_channel: str, version_id: int, load: dict, model: str, job: dict,
             enqueued_at: float) -> None:
    """Runs on the model's queue (see lanthorn.celery.route_by_model)."""
    worker.run_generation(request_id=request_id, reply_channel=reply_channel,
                            version_id=version_id, load=load, job=job, enqueued_at=enqueued_at)


@shared_task(name="inference.embed", ignore_result=True)
def embed(*, request_id: str, reply_channel: str, version_id: int, load: dict, model: str, inputs: list[str],
          enqueued_at: float) -> None:
    """Runs on the model's queue, like generate."""
    embeddings.run_embedding(request_id=request_id, reply_channel=reply_channel, version_id=version_id,
                             load=load, inputs=inputs, enqueued_at=enqueued_at)
