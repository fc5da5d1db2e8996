"""Google Cloud clients and credentials, made one way for the lake (GCS) and the warehouse (BigQuery).

Credentials are found the Google way, in this order:

1. an emulator: `STORAGE_EMULATOR_HOST` / `BIGQUERY_EMULATOR_HOST` set -> anonymous credentials,
   plain HTTP to that address (what the tests use);
2. a service-account key file whose *path* reaches a resource through `dg.EnvVar`
   (`TAXI_GCP_KEYFILE`), so it never appears in run config, logs or the UI;
3. Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth
   application-default login`, or the metadata server of the VM / Cloud Run / GKE workload.

Nothing here logs or returns a secret: `describe_credentials` only says which of the three applies.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pyarrow.fs as pafs


GCS_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
BIGQUERY_SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/devstorage.read_only")

#: Google's rule for project ids (6-30 chars, lowercase letters, digits, hyphens), optionally
#: with a legacy `domain.com:` prefix.
_PROJECT_ID = re.compile(r"^(?:[a-z][a-z0-9.-]{0,62}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]\Z")


def validate_project_id(project: str) -> str:
    if not isinstance(project, str) or not _PROJECT_ID.match(project):
        raise ValueError(
            f"invalid Google Cloud project id {project!r}: 6-30 lowercase letters, digits and hyphens, "
            "starting with a letter"
        )
    return project


def credentials(keyfile: str | None, scopes: tuple[str, ...], emulator: bool) -> tuple[Any, str | None]:
    """(credentials, project the credentials name or None)."""
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), None
    if keyfile:
        from google.oauth2 import service_account

        creds = service_account.Credentials.from_service_account_file(keyfile, scopes=list(scopes))
        return creds, creds.project_id
    import google.auth

    return google.auth.default(scopes=list(scopes))


def describe_credentials(keyfile: str | None, emulator: bool) -> str:
    """Which credentials are used, for people: never the secret itself."""
    if emulator:
        return "anonymous (emulator)"
    return "service-account key file" if keyfile else "application default credentials"


# -- GCS -------------------------------------------------------------------------------------
def gcs_filesystem(keyfile: str | None = None, emulator_host: str | None = None) -> tuple[pafs.FileSystem, dt.datetime | None]:
    """A pyarrow GCS filesystem, and when its credentials expire (None: they never do or
    pyarrow refreshes them itself).

    pyarrow's GCS client does ADC on its own (google-cloud-cpp reads GOOGLE_APPLICATION_CREDENTIALS
    and the metadata server). A key file given through a resource is turned into a short-lived
    access token; the caller builds a new filesystem before it expires.
    """
    if emulator_host:
        scheme, _, hostport = emulator_host.rpartition("://")
        return pafs.GcsFileSystem(anonymous=True, endpoint_override=hostport, scheme=scheme or "http", retry_time_limit=dt.timedelta(seconds=15)), None
    if keyfile:
        import google.auth.transport.requests

        creds, _ = credentials(keyfile, GCS_SCOPES, emulator=False)
        creds.refresh(google.auth.transport.requests.Request())
        expiry = creds.expiry.replace(tzinfo=dt.timezone.utc) if creds.expiry.tzinfo is None else creds.expiry
        return pafs.GcsFileSystem(access_token=creds.token, credential_token_expiration=expiry), expiry
    return pafs.GcsFileSystem(), None


def storage_client(keyfile: str | None = None, emulator_host: str | None = None):
    """A google-cloud-storage client (used for what pyarrow cannot do: generation preconditions)."""
    from google.cloud import storage

    emulator = emulator_host is not None
    creds, project = credentials(keyfile, GCS_SCOPES, emulator)
    options = {"api_endpoint": emulator_host} if emulator else None
    return storage.Client(project=project or ("emulator" if emulator else None), credentials=creds, client_options=options)


# -- BigQuery --------------------------------------------------------------------------------
def bigquery_client(project: str, location: str | None, keyfile: str | None = None, emulator_host: str | None = None):
    """A BigQuery client; with an emulator host, every call goes there, anonymously."""
    from google.cloud import bigquery

    emulator = emulator_host is not None
    creds, _ = credentials(keyfile, BIGQUERY_SCOPES, emulator)
    options = {"api_endpoint": emulator_host} if emulator else None
    return bigquery.Client(project=project, credentials=creds, location=location or None, client_options=options)
