"""The Jobs page (admins): background work queued and running (pulls, checks) with its progress,
who started it, its log, and Cancel. htmx polls each unfinished job's partial every second."""

from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from console.access import admin_required
from registry import selectors, services
from registry.services import RegistryError


def find_job(kind: str, job_id):
    try:
        return services.get_job(kind=kind, job_id=job_id)
    except RegistryError as exc:
        raise Http404(exc.message) from exc


@admin_required
def jobs_page(request):
    active, finished = selectors.jobs()
    return render(request, "console/jobs.html", {"active": active, "finished": finished})


@admin_required
@vary_on_headers("HX-Request")
def job_detail(request, kind, job_id):
    job = find_job(kind, job_id)
    template = "console/_job.html" if request.htmx else "console/job.html"
    return render(request, template, {"job": job, "open_log": not request.htmx})


@admin_required
@require_POST
def job_cancel(request, kind, job_id):
    job = services.cancel_job(job=find_job(kind, job_id))
    if request.htmx:
        return render(request, "console/_job.html", {"job": job})
    return redirect("jobs")


