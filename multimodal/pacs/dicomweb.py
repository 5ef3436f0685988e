"""Score studies held by a PACS over DICOMweb and store the Structured Reports back.

The loop: QIDO-RS finds CR/DX studies, QIDO-RS again skips those that already hold an SR from this
model, WADO-RS retrieves the CR/DX instances as stored (transfer syntax ``*``: Orthanc without gdcm
cannot transcode JPEG 2000 / RLE), the scorer writes an SR, STOW-RS stores it and the response's
FailedSOPSequence must be empty. Running it twice leaves one SR per study.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from multimodal.pacs import PacsError
from multimodal.pacs.scoring import StudyScorer, load_scorer
from multimodal.security import audit
from multimodal.security.secrets import Credentials, check_transport, resolve_credentials
from multimodal.security.tls import explain_certificate_error
from preprocessing.errors import ConfigError, MmdxError

log = logging.getLogger(__name__)

ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)
RETRY_STATUS = (500, 502, 503, 504)
QIDO_PAGE = 500


class _Session(requests.Session):
    """A Session whose ``verify`` wins: requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` replace a
    session's ``verify`` unless it is passed with each request, so it is passed with each request."""

    def request(self, method, url, **kwargs):
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, **kwargs)


def _session(credentials: Credentials, verify: bool, ca_bundle: str | None, retries: int,
             backoff: float) -> requests.Session:
    """A requests Session with auth, TLS settings and retries on 5xx / connection errors."""
    session = _Session()
    if credentials.token:
        session.headers["Authorization"] = f"Bearer {credentials.token}"
    elif credentials.user:
        session.auth = (credentials.user, credentials.password or "")
    session.verify = ca_bundle if (verify and ca_bundle) else verify
    # STOW of an SR is idempotent (same SOP Instance UID), so POST may be retried too.
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                  status_forcelist=RETRY_STATUS, allowed_methods=None, raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class DicomwebPacs:
    """A PACS reached over DICOMweb (QIDO-RS, WADO-RS, STOW-RS) with clear errors.

    ``url`` is the DICOMweb root (e.g. ``https://pacs/dicom-web``). Auth: HTTP basic
    (``user``/``password``) or a bearer ``token``, else from the environment, ``secrets_file`` or
    netrc (:func:`multimodal.security.secrets.resolve_credentials`); refused over plain ``http://``
    unless ``allow_http_auth``. ``verify=False`` skips TLS checks (with a loud warning); ``ca_bundle``
    is a PEM file of trusted CAs; both win over ``REQUESTS_CA_BUNDLE``. ``timeout`` (s) applies to
    each request; ``retries`` with exponential ``backoff`` (s) cover 5xx answers and connection errors.
    """

    def __init__(self, url: str, user: str | None = None, password: str | None = None, token: str | None = None,
                 verify: bool = True, ca_bundle: str | None = None, timeout: float = 30.0, retries: int = 3,
                 backoff: float = 0.5, secrets_file: str | Path | None = None, allow_http_auth: bool = False):
        self.url = url.rstrip("/")
        self.timeout = timeout
        credentials = resolve_credentials(self.url, user, password, token, secrets_file)
        check_transport(self.url, credentials, allow_http_auth)
        if not verify:
            log.warning("TLS VERIFICATION IS OFF for %s (--insecure): anyone on the network path can read and "
                        "change what is sent, credentials included; use --ca-bundle instead", self.url)
        session = _session(credentials, verify, ca_bundle, retries, backoff)
        try:
            self.client = DICOMwebClient(self.url, session=session, timeout=timeout)
        except ValueError as err:
            raise PacsError(f"{url}: not a DICOMweb URL ({err})") from err
        # Retries live in the session (urllib3); the client's own retry loop would multiply them.
        self.client.set_http_retry_params(retry=False)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn requests' exceptions into a PacsError naming the server and what was being done."""
        try:
            yield
        except requests.HTTPError as err:
            code = err.response.status_code if err.response is not None else None
            if code in (401, 403):
                raise PacsError(f"{self.url}: credentials were refused (HTTP {code}) while trying to {action}; "
                                "check --user/--password or --token") from err
            detail = err.response.text[:300] if err.response is not None else ""
            raise PacsError(f"{self.url}: HTTP {code} while trying to {action}: {detail}") from err
        except requests.exceptions.SSLError as err:
            raise PacsError(f"{self.url}: TLS verification failed: {explain_certificate_error(err)}; "
                            "pass --ca-bundle with the PACS's CA") from err
        except requests.Timeout as err:
            raise PacsError(f"{self.url}: no answer within {self.timeout:g} s while trying to {action}") from err
        except (requests.ConnectionError, requests.exceptions.RetryError) as err:
            raise PacsError(f"{self.url}: cannot reach the PACS ({type(err).__name__}) while trying to {action}; "
                            "is the URL right and the server up?") from err

    def _search(self, search: Callable[..., list[dict]], action: str, **kwargs) -> list[Dataset]:
        """All result rows of a QIDO-RS search, paged with limit/offset.

        dicomweb-client's ``get_remaining`` loops forever on servers that ignore ``offset`` (Orthanc
        1.10 with ``ModalitiesInStudy``), so paging stops on a short page or a page with nothing new.
        """
        rows: dict[str, dict] = {}
        while True:
            with self._errors(action):
                page = search(limit=QIDO_PAGE, offset=len(rows), **kwargs)
            before = len(rows)
            rows.update((json.dumps(row, sort_keys=True), row) for row in page)
            if len(page) == QIDO_PAGE and len(rows) == before:
                log.warning("%s ignores the QIDO-RS offset; results may stop at %d rows", self.url, len(rows))
            if len(page) < QIDO_PAGE or len(rows) == before:
                return [Dataset.from_json(row) for row in rows.values()]

    def find_studies(self, patient_id: str | None = None, since: str | None = None, until: str | None = None,
                     modalities: Sequence[str] = ("DX", "CR"), accession: str | None = None) -> list[str]:
        """StudyInstanceUIDs matching the filters (dates ``YYYYMMDD``, inclusive), sorted.

        One QIDO-RS query per modality (``ModalitiesInStudy``), because servers differ in how
        they match a list of values.
        """
        filters: dict[str, str] = {}
        if patient_id:
            filters["PatientID"] = patient_id
        if accession:
            filters["AccessionNumber"] = accession
        if since or until:
            filters["StudyDate"] = f"{since or ''}-{until or ''}"
        found: set[str] = set()
        for modality in modalities:
            rows = self._search(self.client.search_for_studies, f"search for {modality} studies",
                                search_filters={**filters, "ModalitiesInStudy": modality})
            found.update(str(row.StudyInstanceUID) for row in rows)
        return sorted(found)

    def series(self, study_uid: str, modality: str) -> list[str]:
        """SeriesInstanceUIDs of one modality in a study."""
        rows = self._search(self.client.search_for_series, f"search for {modality} series in study {study_uid}",
                            study_instance_uid=study_uid, search_filters={"Modality": modality})
        return [str(row.SeriesInstanceUID) for row in rows]

    def structured_reports(self, study_uid: str) -> list[Dataset]:
        """Metadata (no bulk data) of every SR instance in a study."""
        reports = []
        for series_uid in self.series(study_uid, "SR"):
            with self._errors(f"read SR metadata of study {study_uid}"):
                rows = self.client.retrieve_series_metadata(study_uid, series_uid)
            reports.extend(Dataset.from_json(row) for row in rows)
        return reports

    def retrieve(self, study_uid: str, modalities: Sequence[str] = ("DX", "CR")) -> list[Dataset]:
        """The study's instances of the given modalities, in their stored transfer syntax."""
        datasets = []
        for modality in modalities:
            for series_uid in self.series(study_uid, modality):
                with self._errors(f"retrieve series {series_uid} of study {study_uid}"):
                    datasets.extend(self.client.retrieve_series(study_uid, series_uid,
                                                                media_types=ANY_TRANSFER_SYNTAX))
        return datasets

    def store(self, dataset: Dataset) -> None:
        """STOW-RS one instance; raises PacsError unless the server reports it stored."""
        with self._errors(f"store SR {dataset.SOPInstanceUID}"):
            response = self.client.store_instances([dataset], study_instance_uid=dataset.StudyInstanceUID)
        failed = response.get("FailedSOPSequence", [])
        if failed:
            reasons = ", ".join(f"{item.get('ReferencedSOPInstanceUID', '?')}: reason "
                                f"{item.get('FailureReason', '?')}" for item in failed)
            raise PacsError(f"{self.url}: STOW-RS rejected {reasons}")
        stored = {item.get("ReferencedSOPInstanceUID") for item in response.get("ReferencedSOPSequence", [])}
        if dataset.SOPInstanceUID not in stored:
            raise PacsError(f"{self.url}: STOW-RS answer does not list SR {dataset.SOPInstanceUID} as stored")


def score_study(pacs: DicomwebPacs, study_uid: str, scorer: StudyScorer,
                modalities: Sequence[str] = ("DX", "CR")) -> dict:
    """Score one study unless it already holds an SR from this scorer's algorithm; store the SR.

    Returns ``{"study", "status": "scored" | "skipped" | "empty", "sr"?, "instances"?}``;
    ``instances`` accounts for every retrieved instance by SOPInstanceUID: ``{"status": "used",
    "view"}`` or ``{"status": "skipped" | "failed", "reason"}`` (the view rule,
    :mod:`preprocessing.views`). Errors reaching the PACS raise PacsError; errors reading the
    images raise the project's ImageReadError family.
    """
    if any(scorer.wrote(sr) for sr in pacs.structured_reports(study_uid)):
        return {"study": study_uid, "status": "skipped"}
    datasets = pacs.retrieve(study_uid, modalities)
    if not datasets:
        return {"study": study_uid, "status": "empty"}
    audit.record("read", study_uid, scorer.model, detail={"peer": pacs.url, "instances": len(datasets)})
    scored = scorer(datasets)
    audit.record("score", study_uid, scorer.model)
    pacs.store(scored.sr)
    audit.record("send", study_uid, scorer.model, detail={"peer": pacs.url})
    return {"study": study_uid, "status": "scored", "sr": str(scored.sr.SOPInstanceUID),
            "instances": scored.accounting(datasets)}


def score_pacs(url: str, model_dir: str | Path | None = None, studies: Sequence[str] | None = None,
               since: str | None = None, modality: str = "DX,CR", user: str | None = None,
               password: str | None = None, token: str | None = None, verify: bool = True,
               ca_bundle: str | None = None, timeout: float = 30.0, secrets_file: str | Path | None = None,
               allow_http_auth: bool = False, scorer: StudyScorer | None = None) -> dict:
    """Score the PACS's studies that have no SR from this model yet and store one SR for each.

    ``studies`` (StudyInstanceUIDs) or ``since`` (``YYYYMMDD``) choose the studies; ``modality`` is
    a comma-separated list (CR, DX). Credentials and TLS: see :class:`DicomwebPacs`. ``scorer``
    replaces the default ``load_scorer(model_dir)``.
    A study whose images cannot be read is recorded as failed and the loop goes on; a PACS that
    cannot be reached or refuses the credentials raises PacsError before anything is written.

    Returns a summary: ``{"url", "found", "scored", "skipped", "failed", "studies": [...]}``.
    """
    if since is not None and not re.fullmatch(r"\d{8}", since):
        raise ConfigError("since", f"expected a date YYYYMMDD, got {since!r}")
    modalities = tuple(m.strip().upper() for m in modality.split(",") if m.strip())
    pacs = DicomwebPacs(url, user=user, password=password, token=token, verify=verify, ca_bundle=ca_bundle,
                        timeout=timeout, secrets_file=secrets_file, allow_http_auth=allow_http_auth)
    uids = list(studies) if studies else pacs.find_studies(since=since, modalities=modalities)
    if scorer is None:
        if model_dir is None:
            raise PacsError("score_pacs needs a model_dir or a scorer")
        scorer = load_scorer(model_dir)
    rows = []
    for uid in uids:
        try:
            rows.append(score_study(pacs, uid, scorer, modalities))
        except PacsError:
            raise
        except MmdxError as err:
            log.warning("study %s failed: %s", uid, err)
            audit.record("score", uid, scorer.model, outcome="failure", detail={"peer": url})
            rows.append({"study": uid, "status": "failed", "reason": str(err)})
        log.info("study %s: %s", uid, rows[-1]["status"])
    count = {status: sum(r["status"] == status for r in rows) for status in ("scored", "skipped", "failed")}
    return {"url": url, "found": len(uids), **count, "studies": rows}
