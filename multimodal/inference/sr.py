"""A :class:`StudyResult` as a DICOM Comprehensive SR (TID 1500 Measurement Report, via highdicom).

Layout of the content tree (root: TID 1500 "Imaging Measurement Report"):

* observation context: the model as a device observer (name, version, a UID derived from its
  config hash);
* image library: the source images;
* one TID 1501 measurement group per observation: ``finding type`` = the observation, a
  ``Probability`` measurement (unit "no units", in [0, 1]; when the result has an uncertainty, the
  probability's Derivation is Mean (SNOMED CT 373098007) and its TID 310/311 measurement
  properties hold the uncertainty as "Standard deviation of population" (DCM 121414, unit "no
  units") with the samples it came from (``ensemble``, ``tta``, ``mc_dropout``, ...) as the
  "Population Description" text) and a qualitative evaluation Present /
  Absent / Indeterminate (SNOMED CT 52101004 / 272519000 / 82334004: the result's decision, from the
  model's threshold and indeterminate band), with TID 4019 algorithm identification;
* per positive observation, TID 1410 planar-ROI groups on the frontal source image: a ``POINT`` at
  the heat-map peak, and a closed ``POLYLINE`` outlining each zone it lies in (zones as finding
  sites), in the source image's pixel coordinates;
* a "Qualitative Evaluations" container (TID 1500 row 12) holding the generated findings as TEXT.

Observations are coded in SNOMED CT / DICOM (``preprocessing.codes``: only codes PS3.16 lists),
zones as SNOMED CT anatomy with laterality; the private scheme ``99MMDX`` for concepts without a
checked standard code (declared in the Coding Scheme Identification Sequence when used).
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.tag import Tag
from pydicom.valuerep import DA, DT, TM
from pydicom.uid import generate_uid

from multimodal.inference.results import SourceImage, StudyResult
from preprocessing.codes import (ABSENT, INDETERMINATE, MEAN, NO_UNITS, PRESENT, PRIVATE_SCHEME, PROBABILITY,
                                 STANDARD_DEVIATION, Code, observation_code, zone_site)
from preprocessing.errors import MmdxError
from preprocessing.vocab import ZONE_BOXES

PROCEDURE = hd.sr.CodedConcept("399208008", "SCT", "Plain chest X-ray")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("126010", "DCM", "Qualitative Evaluations")
MANUFACTURER = "mmdx"
SR_SERIES_NUMBER = 9901
PIXEL_DATA = Tag("PixelData")
_TEMPORAL_VRS = {"DA": DA, "DT": DT, "TM": TM}


def coded(code: Code) -> hd.sr.CodedConcept:
    """The highdicom concept of a :class:`preprocessing.codes.Code`."""
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def finding_site(zone: str) -> hd.sr.FindingSite:
    """A zone as a finding site: SNOMED CT anatomy with its laterality."""
    site = zone_site(zone)
    return hd.sr.FindingSite(anatomic_location=coded(site.location),
                             laterality=coded(site.laterality) if site.laterality else None)


def to_structured_report(result: StudyResult, source_datasets: Sequence[Dataset], *,
                         series_number: int = SR_SERIES_NUMBER, instance_number: int = 1) -> hd.sr.ComprehensiveSR:
    """Build the Comprehensive SR of ``result`` for the DICOM images it was computed from.

    ``source_datasets`` are the study's images (headers suffice, pixel data is not read), in the
    order of ``result.sources``; patient and study context are copied from them, and the SR gets
    its own series and instance UIDs in the same study, derived from the study, its images and the
    model (the same inputs and model give the same SR UIDs, so a resent SR is no duplicate). Raises :class:`MmdxError` when there is no
    DICOM source (an SR must reference its images). Returns a ``pydicom.Dataset`` subclass; write
    it with ``.save_as(path)``.
    """
    if not source_datasets:
        raise MmdxError(f"study {result.study_id}: a structured report needs the source DICOM datasets")
    source_datasets = [_valid_header(ds) for ds in source_datasets]
    frontal = source_datasets[0]
    if result.study_instance_uid and str(frontal.StudyInstanceUID) != result.study_instance_uid:
        raise MmdxError(f"study {result.study_id}: source datasets belong to study {frontal.StudyInstanceUID}")
    name = result.model.get("name", "mmdx")
    version = result.model.get("version", "0")
    config_hash = result.model.get("config_hash", "")
    parameters = [f"{key}={result.model[key]}" for key in ("config_hash", "sha256") if result.model.get(key)]
    algorithm = hd.sr.AlgorithmIdentification(name=name, version=version, parameters=parameters or None)
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[name, version, config_hash]), name=name,
        manufacturer_name=MANUFACTURER, model_name=name)
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))

    groups: list = [_observation_group(obs_name, obs, algorithm, frontal, result.uncertainty_method)
                    for obs_name, obs in result.observations.items()]
    region_source = hd.sr.SourceImageForRegion.from_source_image(frontal)
    geometry = result.sources[0] if result.sources else None
    for obs_name in result.positives:
        groups.extend(_region_groups(obs_name, result, algorithm, region_source, geometry))

    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=PROCEDURE,
                                     imaging_measurements=groups,
                                     referenced_images=source_datasets if _describable(source_datasets) else None)
    if result.findings:
        report[0].ContentSequence.append(_findings_container(result.findings))
    # UIDs derived from the study, its source images and the model: scoring the same study with the
    # same model again (a retry after a crash, a rerun) yields the same SR instance, which a PACS stores
    # once, instead of a duplicate report.
    identity = [str(frontal.StudyInstanceUID), *sorted(str(ds.SOPInstanceUID) for ds in source_datasets),
                name, version, config_hash, str(series_number)]
    sr = hd.sr.ComprehensiveSR(
        evidence=source_datasets, content=report[0], series_instance_uid=generate_uid(entropy_srcs=identity),
        series_number=series_number, sop_instance_uid=generate_uid(entropy_srcs=[*identity, str(instance_number)]),
        instance_number=instance_number,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=f"{name} {version} AI results"[:64])
    # Generated text may hold any character; UTF-8 encodes it and every copied patient/study value.
    sr.SpecificCharacterSet = "ISO_IR 192"
    if any(observation_code(o).scheme == PRIVATE_SCHEME for o in result.observations):
        _declare_private_scheme(sr)
    return sr


def _declare_private_scheme(sr: Dataset) -> None:
    sr.CodingSchemeIdentificationSequence = [Dataset()]
    scheme = sr.CodingSchemeIdentificationSequence[0]
    scheme.CodingSchemeDesignator = PRIVATE_SCHEME
    scheme.CodingSchemeName = "mmdx observations without a standard code"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER


def _describable(datasets: Sequence[Dataset]) -> bool:
    """Whether highdicom can describe the images in an image library (TID 1600): projection
    radiographs need Patient Orientation and Imager Pixel Spacing, which many files lack."""
    return all(len(ds.get("PatientOrientation") or []) == 2 and ds.get("ImagerPixelSpacing") for ds in datasets)


def _valid_header(ds: Dataset) -> Dataset:
    """The header of ``ds`` without pixel data, with dates/times that do not parse made empty.

    Archives (and de-identification tools) leave values such as a hash in PatientBirthDate;
    highdicom copies the patient/study context and would refuse them.
    """
    header = Dataset()
    header.file_meta = getattr(ds, "file_meta", Dataset())
    for element in ds:
        if element.tag == PIXEL_DATA:
            continue
        if element.VR in _TEMPORAL_VRS and not _parses(element):
            header.add_new(element.tag, element.VR, "")
        else:
            header.add(element)
    return header


def _parses(element) -> bool:
    try:
        values = element.value if element.VM > 1 else [element.value]
        for value in values:
            if value not in (None, ""):
                _TEMPORAL_VRS[element.VR](value)
    except (ValueError, TypeError):
        return False
    return True


def _observation_group(name: str, obs, algorithm, frontal: Dataset,
                       uncertainty_method: str | None) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    concept = coded(observation_code(name))
    probability = hd.sr.Measurement(name=coded(PROBABILITY), value=float(obs.probability),
                                    unit=coded(NO_UNITS), algorithm_id=algorithm,
                                    **_spread(obs.uncertainty, uncertainty_method))
    decision = hd.sr.QualitativeEvaluation(name=concept, value=decision_code(obs))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=name),
        finding_type=concept, algorithm_id=algorithm, measurements=[probability],
        qualitative_evaluations=[decision],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(frontal)])


def _spread(uncertainty: float | None, method: str | None) -> dict:
    """The Probability measurement's derivation (Mean) and properties (the samples' standard
    deviation, TID 311) when the result has an uncertainty; nothing for one plain pass."""
    if uncertainty is None:
        return {}
    deviation = hd.sr.NumContentItem(name=coded(STANDARD_DEVIATION), value=float(uncertainty), unit=coded(NO_UNITS),
                                     relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES)
    population = f"{method or 'model'} samples"
    return {"derivation": coded(MEAN), "properties": hd.sr.MeasurementProperties(
        measurement_statistical_properties=hd.sr.MeasurementStatisticalProperties([deviation], description=population))}


def decision_code(obs) -> hd.sr.CodedConcept:
    """SNOMED CT Present / Absent / Indeterminate for an observation's decision (a result without one,
    written before decisions existed, falls back to ``positive``)."""
    decision = obs.decision or ("present" if obs.positive else "absent")
    return coded({"present": PRESENT, "absent": ABSENT, "indeterminate": INDETERMINATE}[decision])


def _region_groups(name: str, result: StudyResult, algorithm, region_source,
                   geometry: SourceImage | None) -> list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    """The heat-map peak as a POINT, and each zone of the observation as a closed POLYLINE."""
    obs = result.observations[name]
    concept = coded(observation_code(name))
    present = [hd.sr.QualitativeEvaluation(name=concept, value=decision_code(obs))]
    sites = [finding_site(zone) for zone in obs.zones]
    groups = []
    if obs.peak is not None and obs.peak.view == 0:
        point = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POINT,
                                  graphic_data=np.array([[obs.peak.x, obs.peak.y]]), source_image=region_source)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{name} peak"),
            referenced_region=point, finding_type=concept, algorithm_id=algorithm, finding_sites=sites or None,
            qualitative_evaluations=present, geometric_purpose=codes.DCM.Center))
    if geometry is None or geometry.square_to_pixels is None:
        return groups
    for zone in obs.zones:
        outline = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                                    graphic_data=zone_outline(zone, geometry), source_image=region_source)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{name} {zone}"),
            referenced_region=outline, finding_type=concept, algorithm_id=algorithm,
            finding_sites=[finding_site(zone)],
            qualitative_evaluations=present))
    return groups


def zone_outline(zone: str, source: SourceImage) -> np.ndarray:
    """Closed rectangle of a zone, float ``[5, 2]`` (column, row) in source pixels, clipped to the image."""
    x0, y0, x1, y1 = ZONE_BOXES[zone]
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float64)
    points = np.array([source.to_pixels(x, y) for x, y in corners])
    points[:, 0] = np.clip(points[:, 0], 0.0, source.columns)
    points[:, 1] = np.clip(points[:, 1], 0.0, source.rows)
    return points


def _findings_container(findings: str) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS,
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence([hd.sr.TextContentItem(
        name=codes.DCM.Finding, value=findings, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)])
    return container
