"""DICOM de-identification: the PS3.15 Basic Application Level Confidentiality Profile.

Built on dicognito (PS3.15 E.1 Basic Profile): it replaces names (PN), IDs, UIDs (consistently for
one seed), institution data and shifts every date by one offset. On top of it, this module (see
``docs/deid.md`` for the table coverage):

- removes the attributes the standard's table marks X (remove) that dicognito keeps
  (:data:`REMOVED`), blanks the ones it marks Z that dicognito keeps (:data:`EMPTIED`) and removes
  all private tags;
- dates: without ``keep_dates_shifted`` every DA/DT/TM is emptied (the profile without options);
  with it, dates are shifted by a per-patient offset derived from the salt and the patient ID
  (Retain Longitudinal Temporal Information, Modified Dates Option);
- sets PatientIdentityRemoved and DeidentificationMethod / DeidentificationMethodCodeSequence
  (113100, and 113107 when dates are shifted);
- refuses images flagged BurnedInAnnotation=YES unless ``allow_burned_in`` (pixels are not cleaned).

Pixel data is never touched. The same salt maps each UID and ID to the same new value in every
run; without a salt a random one is used (nothing links runs).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import dicognito
import pydicom
from dicognito.anonymizer import Anonymizer
from dicognito.datetimeanonymizer import DateTimeAnonymizer
from pydicom import Dataset
from pydicom.errors import InvalidDicomError

from multimodal.security import audit
from preprocessing.errors import DicomReadError, UnsupportedImageError

log = logging.getLogger(__name__)

# PS3.15 Table E.1-1 attributes with action X (or X/Z, X/D...) that dicognito leaves in place.
REMOVED = (
    "AcquisitionComments", "AcquisitionDeviceProcessingDescription", "AcquisitionProtocolDescription",
    "ActualHumanPerformersSequence", "AdditionalPatientHistory", "AdmissionID", "AdmittingDiagnosesCodeSequence",
    "AdmittingDiagnosesDescription", "Allergies", "Arbitrary", "AuthorObserverSequence", "CassetteID",
    "ConfidentialityConstraintOnPatientDataDescription", "ContributionDescription", "CountryOfResidence",
    "CustodialOrganizationSequence", "DataSetTrailingPadding", "DerivationDescription", "DetectorID",
    "DeviceSerialNumber", "DigitalSignaturesSequence", "DischargeDiagnosisDescription", "DistributionAddress",
    "DistributionName", "EthnicGroup", "FrameComments", "GantryID", "GeneratorID", "HumanPerformerName",
    "HumanPerformerOrganization", "IconImageSequence", "IdentifyingComments", "ImageComments",
    "ImagePresentationComments", "ImagingServiceRequestComments", "Impressions", "InstitutionAddress",
    "InstitutionalDepartmentName", "InstitutionName", "InsurancePlanIdentification",
    "IntendedRecipientsOfResultsIdentificationSequence", "InterpretationApproverSequence", "InterpretationAuthor",
    "InterpretationDiagnosisDescription", "InterpretationIDIssuer", "InterpretationRecorder", "InterpretationText",
    "InterpretationTranscriber", "IssuerOfAdmissionID", "IssuerOfPatientID", "IssuerOfServiceEpisodeID",
    "MedicalAlerts", "ModifiedAttributesSequence", "ModifiedImageDescription", "ModifyingDeviceID",
    "NameOfPhysiciansReadingStudy", "NamesOfIntendedRecipientsOfResults", "OperatorIdentificationSequence",
    "OperatorsName", "OrderCallbackPhoneNumber", "OrderEnteredBy", "OrderEntererLocation",
    "OriginalAttributesSequence", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "ParticipantSequence", "PatientAddress", "PatientAge", "PatientBirthName", "PatientBirthTime", "PatientComments",
    "PatientInstitutionResidence", "PatientMotherBirthName", "PatientPrimaryLanguageCodeSequence", "PatientSexNeutered",
    "PatientSize", "PatientState", "PatientTransportArrangements", "PatientWeight", "PerformedLocation",
    "PerformedProcedureStepDescription", "PerformedProcedureStepID", "PerformedStationAETitle",
    "PerformedStationName", "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName", "PersonAddress",
    "PersonTelephoneNumbers", "PhysicianApprovingInterpretation", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence", "PlateID",
    "PreMedication", "PregnancyStatus", "ProtocolName", "ReasonForStudy", "ReasonForTheRequestedProcedure",
    "ReferencedDigitalSignatureSequence", "ReferencedPatientAliasSequence", "ReferencedPatientSequence",
    "ReferencedSOPInstanceMACSequence", "ReferringPhysicianAddress", "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers", "RegionOfResidence", "RequestAttributesSequence", "RequestedContrastAgent",
    "RequestedProcedureComments", "RequestedProcedureDescription", "RequestedProcedureLocation",
    "RequestingPhysician", "ResponsiblePerson", "ResultsComments", "ResultsDistributionListSequence",
    "ResultsIDIssuer", "ScheduledHumanPerformersSequence", "ScheduledPatientInstitutionResidence",
    "ScheduledPerformingPhysicianIdentificationSequence", "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepLocation", "ScheduledStationAETitle", "ScheduledStationGeographicLocationCodeSequence",
    "ScheduledStationName", "ScheduledStationNameCodeSequence", "ScheduledStudyLocation",
    "ScheduledStudyLocationAETitle", "SeriesDescription", "ServiceEpisodeDescription", "ServiceEpisodeID",
    "SmokingStatus", "SpecialNeeds", "StationName", "StudyComments", "StudyDescription", "StudyIDIssuer",
    "TextComments", "TextString", "TopicAuthor", "TopicKeywords", "TopicSubject", "TopicTitle",
    "VerifyingObserverIdentificationCodeSequence", "VerifyingOrganization", "VisitComments",
)
# Type 2 attributes the table marks Z (zero length) that dicognito keeps as they were.
EMPTIED = ("PatientSex",)

DCM_BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
DCM_MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
# Shift range of the per-patient date offset (days into the past); the same bounds dicognito uses.
SHIFT_DAYS = (62, 730)


class _PatientDateShift(DateTimeAnonymizer):
    """dicognito's DA/DT/TM shifter with an offset chosen per patient (``for_patient``)."""

    def __init__(self, salt: str):
        super().__init__(0)
        self.salt = salt

    def for_patient(self, patient_id: str) -> None:
        digest = hashlib.sha256(f"{self.salt}|date-shift|{patient_id}".encode()).digest()
        low, high = SHIFT_DAYS
        self.offset = -datetime.timedelta(days=low + int.from_bytes(digest[:8], "big") % (high - low))


class _EmptyDates:
    """An element handler that empties every DA, DT and TM value (dates removed, not shifted)."""

    def __call__(self, dataset: Dataset, element) -> bool:
        if element.VR not in ("DA", "DT", "TM"):
            return False
        element.value = ""
        return True

    def describe_actions(self) -> Iterator[str]:
        yield "Empty all DA, DT and TM elements"


class Deidentifier:
    """De-identifies datasets in place; one instance per run so UIDs stay consistent across files.

    ``salt`` seeds every replacement (same salt, same new UIDs and IDs in every run); None draws a
    random one. ``keep_dates_shifted`` shifts dates per patient instead of emptying them.
    """

    def __init__(self, salt: str | None = None, keep_dates_shifted: bool = False, allow_burned_in: bool = False):
        self.salt = salt if salt is not None else os.urandom(16).hex()
        self.keep_dates_shifted = keep_dates_shifted
        self.allow_burned_in = allow_burned_in
        self._anonymizer = Anonymizer(seed=self.salt)
        self._dates = _PatientDateShift(self.salt) if keep_dates_shifted else _EmptyDates()
        self._anonymizer.add_element_handler(self._dates)

    def check(self, ds: Dataset, source: str | Path) -> None:
        """Raise UnsupportedImageError for burned-in annotation unless it is allowed."""
        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES" and not self.allow_burned_in:
            raise UnsupportedImageError(source, "BurnedInAnnotation is YES: text in the pixels may identify the "
                                                "patient and is not removed; pass --allow-burned-in to copy it anyway")

    def __call__(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (pixels untouched) and return it."""
        if isinstance(self._dates, _PatientDateShift):
            self._dates.for_patient(str(ds.get("PatientID", "")))
        ds.remove_private_tags()
        ds.walk(_delete_removed)
        self._anonymizer.anonymize(ds)
        for keyword in EMPTIED:
            if keyword in ds:
                ds[keyword].value = ""
        burned_in = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
        ds.PatientIdentityRemoved = "NO" if burned_in else "YES"
        codes = [DCM_BASIC_PROFILE] + ([DCM_MODIFIED_DATES] if self.keep_dates_shifted else [])
        # LO: at most 64 characters; the coded sequence below carries the full meanings.
        ds.DeidentificationMethod = f"mmdx deid, dicognito {dicognito.__version__}, PS3.15 Basic Profile"[:64]
        ds.DeidentificationMethodCodeSequence = [_code(value, meaning) for value, meaning in codes]
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.keep_dates_shifted else "REMOVED"
        return ds


_REMOVED_TAGS = frozenset(pydicom.datadict.tag_for_keyword(k) for k in REMOVED)


def _delete_removed(dataset: Dataset, element) -> None:
    """``Dataset.walk`` callback deleting the REMOVED attributes at every nesting level, and the
    repeating-group attributes the table marks X: Overlay Data / Comments (60xx,3000 / 4000) and
    curve data (50xx)."""
    tag = element.tag
    overlay = tag.group & 0xFF00 == 0x6000 and tag.element in (0x3000, 0x4000)
    if tag in _REMOVED_TAGS or overlay or tag.group & 0xFF00 == 0x5000:
        del dataset[tag]


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _dicom_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and pydicom.misc.is_dicom(path):
            yield path


def deidentify_folder(input: str | Path, out: str | Path, salt: str | None = None, keep_dates_shifted: bool = False,
                      allow_burned_in: bool = False) -> dict:
    """De-identify every DICOM file under ``input`` into ``out`` (``mmdx deid``).

    Files are written as ``out/<new StudyInstanceUID>/<new SOPInstanceUID>.dcm``, so no original
    identifier survives in a path. All headers are checked first: when any image is flagged
    BurnedInAnnotation=YES and ``allow_burned_in`` is false, nothing is written and
    UnsupportedImageError names the file. Files that are not DICOM are skipped (counted).

    Returns ``{"input", "out", "written", "skipped_not_dicom", "burned_in", "dates"}``.
    """
    input, out = Path(input), Path(out)
    if not input.is_dir():
        raise DicomReadError(input, "input folder does not exist")
    deid = Deidentifier(salt, keep_dates_shifted, allow_burned_in)
    files = list(_dicom_files(input))
    burned_in = 0
    for path in files:
        header = _read(path, stop_before_pixels=True)
        deid.check(header, path)
        burned_in += str(header.get("BurnedInAnnotation", "")).upper() == "YES"
    for path in files:
        ds = deid(_read(path))
        target = out / str(ds.StudyInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
    if burned_in:
        log.warning("%d images carry burned-in annotation; their pixels were copied unchanged", burned_in)
    skipped = sum(1 for p in input.rglob("*") if p.is_file()) - len(files)
    audit.record("de-identify", detail={"written": len(files), "burned_in": burned_in})
    return {"input": str(input), "out": str(out), "written": len(files), "skipped_not_dicom": skipped,
            "burned_in": burned_in, "dates": "shifted" if keep_dates_shifted else "removed"}


def _read(path: Path, stop_before_pixels: bool = False) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, ValueError) as err:
        raise DicomReadError(path, f"cannot read DICOM: {err}") from err
