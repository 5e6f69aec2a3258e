from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Health, metrics, structured logs, alerts and the audit log."""

    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # Time every django-q2 task and count (and alert on) failures, in the worker process.
        from django_q.signals import post_execute_in_worker

        from monitoring.performance import job_finished

        post_execute_in_worker.connect(job_finished, dispatch_uid="monitoring-job-finished")

        # An ASGI request's thread dies with it: its database connection must not outlive it.
        from django.core.signals import request_finished

        from monitoring.db_connections import close_request_connections

        request_finished.connect(
            close_request_connections, dispatch_uid="monitoring-close-request-connections"
        )
