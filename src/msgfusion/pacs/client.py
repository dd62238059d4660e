"""A thin DICOMweb client (dicomweb-client over requests): QIDO-RS to find studies and series,
WADO-RS to fetch a series, STOW-RS to store one, with the PACS's errors as one line each.

Connection settings, as DICOMweb servers are used in hospitals:

- **Authentication** from the environment only, never the command line (where other users see
  it in the process list): ``MSGFUSION_PACS_TOKEN`` (an OAuth bearer token) or
  ``MSGFUSION_PACS_USER`` with ``MSGFUSION_PACS_PASSWORD`` (HTTP basic).
- **TLS** is verified (requests' defaults; a hospital CA bundle through ``REQUESTS_CA_BUNDLE``).
- **Timeouts** (``timeout`` seconds to connect and between bytes) and **retries**: a connection
  that fails is retried ``retries`` times with exponential back-off, as are GET requests answered
  429/502/503/504; a STOW-RS request is never re-sent once it reached the server.
- **No half-stored series**: a new series is stored in one STOW-RS request, then the server is
  asked (QIDO-RS) whether it holds every image; when it does not, what it holds of the series is
  deleted (DICOMweb DELETE, or Orthanc's REST API, whose DICOMweb plugin has no DELETE), and the
  one-line error says so, or names the series left behind where the server deletes nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from msgfusion.errors import PacsError

TOKEN_VARIABLE = "MSGFUSION_PACS_TOKEN"
USER_VARIABLE, PASSWORD_VARIABLE = "MSGFUSION_PACS_USER", "MSGFUSION_PACS_PASSWORD"
T = TypeVar("T")
_STUDY_FIELDS = ("PatientName", "PatientID", "StudyDate", "StudyDescription", "ModalitiesInStudy")


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a study, as QIDO-RS describes it."""

    uid: str
    modality: str
    description: str
    images: int
    number: int | None = None

    def __str__(self) -> str:
        return (f"{self.uid} ({self.modality or '?'}, {self.description or 'no description'}, "
                f"{self.images} images)")


@dataclass(frozen=True)
class StudyInfo:
    """One study, as QIDO-RS describes it."""

    uid: str
    patient_id: str
    patient_name: str
    date: str
    description: str
    modalities: tuple[str, ...]


def _auth_session(timeout: float, retries: int) -> Any:
    """A requests session with the environment's credentials and the retry policy."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    token = os.environ.get(TOKEN_VARIABLE)
    user, password = os.environ.get(USER_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user or password:
        if not (user and password):
            raise PacsError(f"set both {USER_VARIABLE} and {PASSWORD_VARIABLE} for HTTP basic "
                            "authentication (or a bearer token in "
                            f"{TOKEN_VARIABLE})")
        session.auth = (user, password)
    retry = Retry(total=retries, connect=retries, read=0, status=retries, other=0,
                  backoff_factor=0.25, status_forcelist=(429, 502, 503, 504),
                  allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class PacsClient:
    """A DICOMweb server at ``url`` (its service root, e.g. ``https://pacs/dicom-web``)."""

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3) -> None:
        import logging

        from dicomweb_client import DICOMwebClient

        # its failures come back as exceptions, said in one line here; not logged as well
        logging.getLogger("dicomweb_client").addHandler(logging.NullHandler())
        logging.getLogger("dicomweb_client").propagate = False

        if not url.startswith(("http://", "https://")):
            raise PacsError(f"{url}: a DICOMweb URL starts with http:// or https://")
        self.url = url.rstrip("/")
        self._client = DICOMwebClient(self.url, session=_auth_session(timeout, retries),
                                      timeout=timeout)
        self._client.set_http_retry_params(retry=False)  # the session retries (module doc)

    # --- error handling ---------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``fn(*args, **kw)`` with the server's failures as one :class:`PacsError` line."""
        import requests

        try:
            return fn(*args, **kw)
        except requests.exceptions.HTTPError as exc:
            raise PacsError(self._http_message(what, exc.response)) from None
        except requests.exceptions.SSLError as exc:
            raise PacsError(f"PACS at {self.url}: TLS verification failed while {what} "
                            f"({_reason(exc)}); give the hospital's CA bundle in "
                            "REQUESTS_CA_BUNDLE") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise PacsError(f"PACS at {self.url} cannot be reached while {what} "
                            f"({_reason(exc)}); is it running, and is the URL right?") from None
        except requests.exceptions.RequestException as exc:
            raise PacsError(f"PACS at {self.url}: {what} failed ({_reason(exc)})") from None
        except ValueError as exc:  # a malformed (non-DICOMweb) answer
            raise PacsError(f"PACS at {self.url}: {what}: the answer is not DICOMweb "
                            f"({_reason(exc)}); is {self.url} the DICOMweb root?") from None

    def _http_message(self, what: str, response: Any) -> str:
        status = getattr(response, "status_code", "?")
        if status == 401:
            return (f"PACS at {self.url} refused the credentials (HTTP 401) while {what}; set "
                    f"{USER_VARIABLE} and {PASSWORD_VARIABLE}, or {TOKEN_VARIABLE}")
        if status == 403:
            return f"PACS at {self.url} forbids {what} to these credentials (HTTP 403)"
        if status == 404:
            return f"PACS at {self.url}: not found while {what} (HTTP 404)"
        reason = getattr(response, "reason", "") or ""
        return f"PACS at {self.url} answered HTTP {status} {reason} while {what}".rstrip()

    # --- QIDO-RS ----------------------------------------------------------------------------

    def _search(self, what: str, fn: Callable[..., list], key: str, **kw: Any) -> list[dict]:
        """A QIDO-RS search whose answer must be a list of DICOM JSON objects, each with the
        UID tag ``key`` (the level's identifier)."""
        found = self._call(what, fn, **kw)
        if not isinstance(found, list) or not all(isinstance(i, dict) and _value(i, key)
                                                  for i in found):
            raise PacsError(f"PACS at {self.url}: {what}: the answer is not DICOMweb JSON; is "
                            f"{self.url} the DICOMweb root?")
        return found

    def studies(self) -> list[StudyInfo]:
        """Every study the server lists."""
        found = self._search("searching for studies", self._client.search_for_studies,
                             "0020000D", fields=list(_STUDY_FIELDS))
        return [_study(item) for item in found]

    def study(self, study: str) -> StudyInfo:
        """One study, or :class:`PacsError` naming it when the server has none of that UID."""
        found = self._search(f"searching for study {study}", self._client.search_for_studies,
                             "0020000D", search_filters={"StudyInstanceUID": study},
                             fields=list(_STUDY_FIELDS))
        if not found:
            raise PacsError(f"PACS at {self.url} has no study {study}")
        return _study(found[0])

    def series(self, study: str) -> list[SeriesInfo]:
        """The series of a study, in series-number order."""
        found = self._search(f"listing the series of study {study}",
                             self._client.search_for_series, "0020000E",
                             study_instance_uid=study,
                             fields=["SeriesDescription", "SeriesNumber", "Modality",
                                     "NumberOfSeriesRelatedInstances"])
        series = [_series(item) for item in found]
        return sorted(series, key=lambda s: (s.number is None, s.number or 0, s.uid))

    def instances(self, study: str, series: str) -> list[str]:
        """SOP Instance UIDs the server holds in a series."""
        found = self._search(f"listing the images of series {series}",
                             self._client.search_for_instances, "00080018",
                             study_instance_uid=study,
                             series_instance_uid=series, fields=["SOPInstanceUID"])
        return [str(_value(item, "00080018")) for item in found]

    # --- WADO-RS / STOW-RS ------------------------------------------------------------------

    @contextmanager
    def fetched(self, study: str, series: str) -> Iterator[Path]:
        """A temporary folder holding the series' files (streamed one instance at a time),
        removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="msgfusion-pacs-") as tmp:
            folder = Path(tmp) / series
            folder.mkdir()

            def fetch() -> int:
                n = 0
                for ds in self._client.iter_series(study, series):
                    ds.save_as(folder / f"{n:05d}.dcm", enforce_file_format=True)
                    n += 1
                return n

            if self._call(f"fetching series {series}", fetch) == 0:
                raise PacsError(f"PACS at {self.url}: series {series} of study {study} holds "
                                "no images")
            yield folder

    def store(self, study: str, datasets: list[Any]) -> None:
        """Store the instances of one new series in one STOW-RS request, then check that the
        server holds every one; what a failed request left behind is deleted (or named)."""
        series = str(datasets[0].SeriesInstanceUID)
        expected = {str(ds.SOPInstanceUID) for ds in datasets}
        try:
            answer = self._call(f"storing series {series}", self._client.store_instances,
                                datasets=datasets, study_instance_uid=study)
            failed = len(answer.get("FailedSOPSequence", [])) if answer is not None else 0
            if failed:
                raise PacsError(f"PACS at {self.url} refused {failed} of the {len(datasets)} "
                                f"images of the new series {series}")
            held = set(self.instances(study, series))
            if held != expected:
                raise PacsError(f"PACS at {self.url} holds {len(held & expected)} of the "
                                f"{len(datasets)} images stored in the new series {series}")
        except PacsError as exc:
            raise PacsError(f"{exc}; {self._remove_partial(study, series)}") from None

    def _remove_partial(self, study: str, series: str) -> str:
        """Delete what a failed store left of ``series``; says what happened."""
        import requests

        try:
            held = self.instances(study, series)
        except PacsError:
            return f"could not check whether part of series {series} was stored"
        if not held:
            return "nothing was stored"
        try:
            self._client.delete_series(study, series)
        except requests.exceptions.RequestException:
            if not self._orthanc_delete(series):
                return (f"{len(held)} image(s) of series {series} were stored and the server "
                        "refuses to delete them (DICOMweb DELETE); remove that series by hand")
        return f"the {len(held)} image(s) stored of series {series} were deleted again"

    def _orthanc_delete(self, series: str) -> bool:
        """Delete a series through Orthanc's own REST API (its DICOMweb plugin has no DELETE),
        when the server is an Orthanc whose DICOMweb root is ``<orthanc>/dicom-web``."""
        import requests

        if not self.url.endswith("/dicom-web"):
            return False
        root = self.url[: -len("/dicom-web")]
        session = self._client._session
        try:
            found = session.post(f"{root}/tools/lookup", data=series, timeout=30)
            ids = [item["ID"] for item in found.json() if item.get("Type") == "Series"] \
                if found.ok else []
            return bool(ids) and all(session.delete(f"{root}/series/{i}", timeout=30).ok
                                     for i in ids)
        except (requests.exceptions.RequestException, ValueError, KeyError, TypeError):
            return False


def _reason(exc: BaseException) -> str:
    text = str(exc.__context__ or exc) if not str(exc) else str(exc)
    text = " ".join(text.split())
    for marker in ("Connection refused", "timed out", "Name or service not known",
                   "CERTIFICATE_VERIFY_FAILED"):
        if marker in text:
            return marker
    return text[:160]


def _value(item: dict, tag: str) -> Any:
    """The first value of a tag in a DICOM JSON object (PS3.18 F.2), or ``""``."""
    values = item.get(tag, {}).get("Value") or [""]
    value = values[0]
    if isinstance(value, dict):  # a person name
        return value.get("Alphabetic", "")
    return value


def _study(item: dict) -> StudyInfo:
    modalities = tuple(str(m) for m in item.get("00080061", {}).get("Value", []))
    return StudyInfo(str(_value(item, "0020000D")), str(_value(item, "00100020")),
                     str(_value(item, "00100010")), str(_value(item, "00080020")),
                     str(_value(item, "00081030")), modalities)


def _series(item: dict) -> SeriesInfo:
    number = _value(item, "00200011")
    return SeriesInfo(str(_value(item, "0020000E")), str(_value(item, "00080060")),
                      str(_value(item, "0008103E")), int(_value(item, "00201209") or 0),
                      int(number) if number != "" else None)
