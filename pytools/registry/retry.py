"""Retry transient Artifactory failures (connection reset, timeouts, HTTP 5xx) with backoff."""
import time

import requests
from dohq_artifactory.exception import ArtifactoryException


def http_status(exc):
    """The HTTP status behind a dohq-artifactory or requests error, or None."""
    cause = exc if isinstance(exc, requests.HTTPError) else getattr(exc, "__cause__", None)
    response = getattr(cause, "response", None)
    return getattr(response, "status_code", None)


def is_transient(exc):
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError)):
        return True
    if isinstance(exc, (ArtifactoryException, requests.HTTPError)):
        status = http_status(exc)
        return status is not None and status >= 500
    return False


def with_retries(action, retries, first_delay=0.2, sleep=time.sleep):
    """Call `action()`; on a transient failure wait 0.2 s, 0.4 s, ... and call it again."""
    delay = first_delay
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise
        sleep(delay)
        delay = min(delay * 2, 5.0)
