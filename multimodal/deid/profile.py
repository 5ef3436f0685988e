"""PS3.15 Table E.1-1, the Basic Application Level Confidentiality Profile, as data.

The Basic Profile column (every row of the 2024b table with its action: D, Z, X, U and the combined
X/Z, X/D, Z/D, X/Z/D, X/Z/U*) comes from dicom-anonymizer (Kitware, BSD), whose
``dicomfields_2024b`` transcribes the published 2024b table (its header links the page); it is read
at import, not copied. The option
columns mmdx offers (:data:`OPTION_COLUMNS`) are the standard's K (keep) and C (clean) entries for
those options, for the rows of the 2024b table; they were generated from the scrape of the
published table in idiscore 1.2.0 (2024-09-19; not a dependency) and are checked against the Basic
column by the tests. Attributes that are in no row are removed unless :data:`KEPT` lists them
(an allow-list); private attributes are removed (Retain Safe Private keeps the ones named).

:class:`Profile` resolves the action for a tag under a set of options; CID 7050 codes record them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2024b as _table
from pydicom.datadict import tag_for_keyword

TABLE_SOURCE = f"PS3.15 2024b Table E.1-1 (dicom-anonymizer {version('dicom-anonymizer')})"

# dicom-anonymizer's lists, one per action of the Basic Profile column.
_BASIC_LISTS = {"D": "D_TAGS", "Z": "Z_TAGS", "X": "X_TAGS", "U": "U_TAGS", "Z/D": "Z_D_TAGS", "X/Z": "X_Z_TAGS",
                "X/D": "X_D_TAGS", "X/Z/D": "X_Z_D_TAGS", "X/Z/U*": "X_Z_U_STAR_TAGS"}


def _basic_column() -> tuple[dict[int, str], tuple[tuple[int, int, int, int, str], ...]]:
    """(single tag -> action, repeating-group rows as (group, element, group mask, element mask, action))."""
    single, repeating = {}, []
    for action, name in _BASIC_LISTS.items():
        for row in getattr(_table, name):
            if len(row) == 2:
                single[row[0] << 16 | row[1]] = action
            else:
                repeating.append((*row, action))
    return single, tuple(repeating)


BASIC, REPEATING = _basic_column()

# The K / C entries of the option columns mmdx offers, keyed by attribute keyword (2024b rows).
OPTION_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "retain_device_identity": {
        "C": (
            "DestinationAE", "NetworkID", "Originator", "PerformedStationAETitle", "ReceivingAE", "RequestingAE",
            "RetrieveAETitle", "ScheduledStationAETitle", "ScheduledStudyLocationAETitle", "SelectorAEValue",
            "StationAETitle"
        ),
        "K": (
            "BeamHoldTransitionDateTime", "CalibrationDate", "CalibrationDateTime", "CalibrationTime", "CassetteID",
            "DateOfInstallation", "DateOfLastCalibration", "DateOfLastDetectorCalibration", "DateOfManufacture",
            "DateTimeOfLastCalibration", "DetectorID", "DeviceDescription", "DeviceLabel", "DeviceSerialNumber",
            "DeviceUID", "GantryID", "GeneratorID", "LensMake", "LensModel", "LensSerialNumber", "LensSpecification",
            "ManufacturerDeviceClassUID", "ManufacturerDeviceIdentifier", "ModifyingDeviceID", "ModifyingSystem",
            "PerformedStationGeographicLocationCodeSequence", "PerformedStationName",
            "PerformedStationNameCodeSequence", "PlateID", "ScheduledProcedureStepLocation",
            "ScheduledStationGeographicLocationCodeSequence", "ScheduledStationName",
            "ScheduledStationNameCodeSequence", "ScheduledStudyLocation", "SourceManufacturer", "SourceSerialNumber",
            "StationName", "TimeOfLastCalibration", "TimeOfLastDetectorCalibration", "TransducerIdentificationSequence",
            "TreatmentMachineName", "UDISequence", "UniqueDeviceIdentifier", "XRayDetectorID", "XRayDetectorLabel",
            "XRaySourceID"
        ),
    },
    "retain_patient_characteristics": {
        "C": (
            "Allergies", "PatientState", "PreMedication", "SpecialNeeds"
        ),
        "K": (
            "EthnicGroup", "PatientAge", "PatientSex", "PatientSexNeutered", "PatientSize", "PatientWeight",
            "PregnancyStatus", "SelectorASValue", "SmokingStatus"
        ),
    },
    "retain_modified_dates": {
        "C": (
            "AcquisitionDate", "AcquisitionDateTime", "AcquisitionTime", "AdmittingDate", "AdmittingTime",
            "ApprovalStatusDateTime", "AssertionDateTime", "AssertionExpirationDateTime",
            "AttributeModificationDateTime", "BeamHoldTransitionDateTime", "CalibrationDate", "CalibrationDateTime",
            "CalibrationTime", "CertifiedTimestamp", "ContentDate", "ContentTime", "ContextGroupLocalVersion",
            "ContextGroupVersion", "ContrastBolusStartTime", "ContrastBolusStopTime", "ContributionDateTime",
            "CreationDate", "CreationTime", "CurveDate", "CurveTime", "Date", "DateOfDocumentOrVerbalTransactionTrial",
            "DateOfInstallation", "DateOfLastCalibration", "DateOfLastDetectorCalibration", "DateOfManufacture",
            "DateOfSecondaryCapture", "DateTime", "DateTimeOfLastCalibration", "DecayCorrectionDateTime",
            "DigitalSignatureDateTime", "DischargeDate", "DischargeTime", "EffectiveDateTime", "EndAcquisitionDateTime",
            "EthicsCommitteeApprovalEffectivenessEndDate", "EthicsCommitteeApprovalEffectivenessStartDate",
            "ExclusionStartDateTime", "ExpectedCompletionDateTime", "FindingsGroupRecordingDateTrial",
            "FindingsGroupRecordingTimeTrial", "FirstTreatmentDate", "FrameAcquisitionDateTime", "FrameOriginTimestamp",
            "FrameReferenceDateTime", "FunctionalSyncPulse", "GPSDateStamp", "HL7DocumentEffectiveTime",
            "HangingProtocolCreationDateTime", "ImpedanceMeasurementDateTime", "InformationIssueDateTime",
            "InstanceCoercionDateTime", "InstanceCreationDate", "InstanceCreationTime", "InstructionPerformedDateTime",
            "IntendedFractionStartTime", "IntendedPhaseEndDate", "IntendedPhaseStartDate", "InterlockDateTime",
            "InterpretationApprovalDate", "InterpretationApprovalTime", "InterpretationRecordedDate",
            "InterpretationRecordedTime", "InterpretationTranscriptionDate", "InterpretationTranscriptionTime",
            "InterventionDrugStartTime", "InterventionDrugStopTime", "IssueDateOfImagingServiceRequest",
            "IssueTimeOfImagingServiceRequest", "LastMenstrualDate", "ModifiedImageDate", "ModifiedImageTime",
            "MostRecentTreatmentDate", "ObservationDateTime", "ObservationDateTrial", "ObservationStartDateTime",
            "ObservationTimeTrial", "OverlayDate", "OverlayTime", "OverrideDateTime", "ParticipationDateTime",
            "PerformedProcedureStepEndDate", "PerformedProcedureStepEndDateTime", "PerformedProcedureStepEndTime",
            "PerformedProcedureStepStartDate", "PerformedProcedureStepStartDateTime", "PerformedProcedureStepStartTime",
            "PresentationCreationDate", "PresentationCreationTime", "ProcedureStepCancellationDateTime",
            "ProductExpirationDateTime", "ROIDateTime", "ROIObservationDateTime", "RTPlanDate", "RTPlanTime",
            "RadiopharmaceuticalStartDateTime", "RadiopharmaceuticalStartTime", "RadiopharmaceuticalStopDateTime",
            "RadiopharmaceuticalStopTime", "RecordedRTControlPointDateTime", "ReferencedDateTime", "ReviewDate",
            "ReviewTime", "SOPAuthorizationDateTime", "SafePositionExitDate", "SafePositionExitTime",
            "SafePositionReturnDate", "SafePositionReturnTime", "ScheduledAdmissionDate", "ScheduledAdmissionTime",
            "ScheduledDischargeDate", "ScheduledDischargeTime", "ScheduledProcedureStepEndDate",
            "ScheduledProcedureStepEndTime", "ScheduledProcedureStepExpirationDateTime",
            "ScheduledProcedureStepModificationDateTime", "ScheduledProcedureStepStartDate",
            "ScheduledProcedureStepStartDateTime", "ScheduledProcedureStepStartTime", "ScheduledStudyStartDate",
            "ScheduledStudyStartTime", "ScheduledStudyStopDate", "ScheduledStudyStopTime", "SelectorDAValue",
            "SelectorDTValue", "SelectorTMValue", "SeriesDate", "SeriesTime", "SourceEndDateTime",
            "SourceStartDateTime", "SourceStrengthReferenceDate", "SourceStrengthReferenceTime",
            "StartAcquisitionDateTime", "StructureSetDate", "StructureSetTime", "StudyArrivalDate", "StudyArrivalTime",
            "StudyCompletionDate", "StudyCompletionTime", "StudyDate", "StudyReadDate", "StudyReadTime", "StudyTime",
            "StudyVerifiedDate", "StudyVerifiedTime", "SubstanceAdministrationDateTime", "TemplateLocalVersion",
            "TemplateVersion", "Time", "TimeOfDocumentCreationOrVerbalTransactionTrial", "TimeOfLastCalibration",
            "TimeOfLastDetectorCalibration", "TimeOfSecondaryCapture", "TimezoneOffsetFromUTC",
            "TreatmentControlPointDate", "TreatmentControlPointTime", "TreatmentDate", "TreatmentTime",
            "TreatmentToleranceViolationDateTime", "VerificationDateTime"
        ),
    },
    "clean_descriptors": {
        "C": (
            "AcquisitionComments", "AcquisitionDeviceProcessingDescription", "AcquisitionFieldOfViewLabel",
            "AcquisitionProtocolDescription", "AdditionalPatientHistory", "AdmittingDiagnosesCodeSequence",
            "AdmittingDiagnosesDescription", "Allergies", "AnnotationGroupDescription", "AnnotationGroupLabel",
            "BeamDescription", "BolusDescription", "ClinicalTrialSeriesDescription",
            "ClinicalTrialTimePointDescription", "CommentsOnRadiationDose", "CommentsOnThePerformedProcedureStep",
            "CompensatorDescription", "ConceptualVolumeCombinationDescription", "ConceptualVolumeDescription",
            "ContainerDescription", "ContrastBolusAgent", "ContributionDescription", "DecompositionDescription",
            "DerivationDescription", "DeviceSettingDescription", "DischargeDiagnosisDescription",
            "DisplacementReferenceLabel", "DoseReferenceDescription", "EntityDescription", "EntityLabel",
            "EntityLongLabel", "EntityName", "EquipmentFrameOfReferenceDescription", "FilterLookupTableDescription",
            "FixationDeviceDescription", "FractionGroupDescription", "FractionationNotes", "FrameComments",
            "IdentifyingComments", "ImageComments", "ImagingServiceRequestComments", "Impressions",
            "InterlockDescription", "InterlockOriginDescription", "InterpretationDiagnosisDescription",
            "InterpretationText", "LabelText", "LongDeviceDescription", "MakerNote", "MedicalAlerts",
            "MultienergyAcquisitionDescription", "Occupation", "PatientComments", "PatientSetupPhotoDescription",
            "PatientState", "PatientTreatmentPreparationMethodDescription",
            "PatientTreatmentPreparationProcedureParameterDescription", "PerformedProcedureStepDescription",
            "PositionAcquisitionTemplateDescription", "PositionAcquisitionTemplateName", "PrescriptionDescription",
            "PrescriptionNotes", "PrescriptionNotesSequence", "PriorTreatmentDoseDescription", "ProtocolName",
            "PyramidDescription", "PyramidLabel", "ROIDescription", "ROIGenerationDescription", "ROIName",
            "ROIObservationDescription", "ROIObservationLabel", "RTPhysicianIntentNarrative", "RTPlanDescription",
            "RTPlanLabel", "RTPlanName", "RTPrescriptionLabel", "RTToleranceSetLabel", "RTTreatmentApproachLabel",
            "RadiationDoseIdentificationLabel", "RadiationDoseInVivoMeasurementLabel",
            "RadiationGenerationModeDescription", "RadiationGenerationModeLabel", "ReasonForOmissionDescription",
            "ReasonForRequestedProcedureCodeSequence", "ReasonForStudy", "ReasonForSuperseding",
            "ReasonForTheAttributeModification", "ReasonForTheImagingServiceRequest", "ReasonForTheRequestedProcedure",
            "ReasonForVisit", "ReasonForVisitCodeSequence", "RequestAttributesSequence", "RequestedContrastAgent",
            "RequestedProcedureComments", "RequestedProcedureDescription", "RequestedSeriesDescription",
            "RespiratoryMotionCompensationTechniqueDescription", "ResultsComments", "ScheduledProcedureStepDescription",
            "SelectorLOValue", "SelectorLTValue", "SelectorSHValue", "SelectorSTValue", "SelectorUTValue",
            "SeriesDescription", "ServiceEpisodeDescription", "SetupTechniqueDescription", "ShieldingDeviceDescription",
            "SpecimenDetailedDescription", "SpecimenShortDescription", "StructureSetDescription", "StructureSetLabel",
            "StructureSetName", "StudyComments", "StudyDescription", "TreatmentPositionGroupLabel", "TreatmentSite",
            "TreatmentSites", "TreatmentTechniqueNotes", "TreatmentToleranceViolationDescription", "UserContentLabel",
            "UserContentLongLabel", "VisitComments", "WaveformFilterDescription"
        ),
    },
    "clean_structured_content": {
        "C": (
            "AcquisitionContextSequence", "ContentSequence", "SpecimenPreparationSequence"
        ),
    },
    "clean_graphics": {
        "C": (
            "GraphicAnnotationSequence",
        ),
    },
}
# The repeating-group rows (curve data 50xx, overlay data and comments 60xx) are C under Clean
# Graphics; mmdx cannot clean a bitmap, so they stay removed under every option.


@dataclass(frozen=True)
class ProfileOption:
    """One option of the profile: its name in the API and CLI, and its CID 7050 code."""

    name: str
    code: str
    meaning: str


BASIC_PROFILE = ProfileOption("basic_profile", "113100", "Basic Application Confidentiality Profile")
OPTIONS = {o.name: o for o in (
    ProfileOption("retain_modified_dates", "113107",
                  "Retain Longitudinal Temporal Information Modified Dates Option"),
    ProfileOption("retain_patient_characteristics", "113108", "Retain Patient Characteristics Option"),
    ProfileOption("retain_device_identity", "113109", "Retain Device Identity Option"),
    ProfileOption("clean_descriptors", "113105", "Clean Descriptors Option"),
    ProfileOption("clean_structured_content", "113104", "Clean Structured Content Option"),
    ProfileOption("clean_graphics", "113103", "Clean Graphics Option"),
    ProfileOption("retain_safe_private", "113111", "Retain Safe Private Option"),
)}

# Attributes in no row of the table that mmdx keeps: what a projection radiograph, its geometry
# and exposure, a code, an SR content item and a graphic annotation need, none of which names a
# person, place or time. Anything else in no row (CT, MR and RT acquisition details too) is removed.
KEPT = (
    "SpecificCharacterSet", "ImageType", "SOPClassUID", "Modality", "ConversionType", "Manufacturer",
    "ManufacturerModelName", "SoftwareVersions", "SeriesNumber", "InstanceNumber", "AcquisitionNumber",
    "PatientOrientation", "Laterality", "ImageLaterality", "ViewPosition", "BodyPartExamined", "PatientPosition",
    "PresentationIntentType", "BurnedInAnnotation", "RecognizableVisualFeatures", "LossyImageCompression",
    "LossyImageCompressionRatio", "LossyImageCompressionMethod", "QualityControlImage", "SamplesPerPixel",
    "PhotometricInterpretation", "PlanarConfiguration", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "PixelData", "FloatPixelData", "DoubleFloatPixelData", "NumberOfFrames",
    "FrameIncrementPointer", "PixelAspectRatio", "SmallestImagePixelValue", "LargestImagePixelValue",
    "PixelPaddingValue", "PixelPaddingRangeLimit", "PixelIntensityRelationship", "PixelIntensityRelationshipSign",
    "RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth", "VOILUTFunction",
    "VOILUTSequence", "ModalityLUTSequence", "LUTDescriptor", "ModalityLUTType", "LUTData", "PresentationLUTShape",
    "PresentationLUTSequence", "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing",
    "PixelSpacingCalibrationType", "DetectorType", "KVP", "ExposureTime", "XRayTubeCurrent", "Exposure",
    "ExposureInuAs", "DistanceSourceToDetector", "DistanceSourceToPatient", "EstimatedRadiographicMagnificationFactor",
    "FieldOfViewShape", "FieldOfViewDimensions", "Grid", "FilterType", "FocalSpots", "AnodeTargetMaterial",
    "BodyPartThickness", "PositionerType", "CassetteOrientation", "CassetteSize", "PlateType", "PhosphorType",
    "CollimatorShape", "CollimatorLeftVerticalEdge", "CollimatorRightVerticalEdge", "CollimatorUpperHorizontalEdge",
    "CollimatorLowerHorizontalEdge", "DetectorConfiguration", "ExposureControlMode", "FieldOfViewOrigin",
    "FieldOfViewRotation", "FieldOfViewHorizontalFlip", "GeneratorPower", "ImageAndFluoroscopyAreaDoseProduct",
    "Sensitivity", "SpatialResolution", "RelativeXRayExposure", "ExposureIndex", "TargetExposureIndex",
    "DeviationIndex", "BorderDensity", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness",
    "SliceLocation", "DerivationCodeSequence", "PurposeOfReferenceCodeSequence", "ViewCodeSequence",
    "ViewModifierCodeSequence", "AnatomicRegionSequence", "CodeValue",
    "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "ReferencedSOPClassUID", "ReferencedFrameNumber",
    "ValueType", "ConceptNameCodeSequence", "ConceptCodeSequence", "RelationshipType", "ContinuityOfContent",
    "NumericValue", "MeasuredValueSequence", "MeasurementUnitsCodeSequence", "GraphicType", "GraphicData",
    "ReferencedContentItemIdentifier", "ContentTemplateSequence", "MappingResource", "TemplateIdentifier",
    "CompletionFlag", "VerificationFlag", "PreliminaryFlag", "FloatingPointValue", "ReferencedSOPSequence",
    "ReferencedSeriesSequence", "CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence",
    "PerformedProcedureCodeSequence", "CodingSchemeIdentificationSequence", "CodingSchemeName",
    "CodingSchemeResponsibleOrganization", "ContributingEquipmentSequence", "GraphicLayer", "GraphicAnnotationUnits",
    "GraphicDimensions",
    "NumberOfGraphicPoints", "GraphicFilled", "GraphicObjectSequence", "TextObjectSequence",
    "BoundingBoxAnnotationUnits", "BoundingBoxTopLeftHandCorner", "BoundingBoxBottomRightHandCorner",
    "BoundingBoxTextHorizontalJustification", "AnchorPointAnnotationUnits", "AnchorPoint", "AnchorPointVisibility",
    "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)
# Free text in no row of the table, reachable only inside a sequence an option cleans (SR content
# items, graphic annotations): cleaned like a descriptor.
CLEANED_TEXT = ("TextValue", "UnformattedTextValue")


class Profile:
    """The action for each tag under the Basic Profile and the chosen ``options``.

    :meth:`action` gives one of ``D Z X U K C`` or a combined Basic Profile action, or ``None``
    for a tag in no row of the table (then :attr:`kept` decides).
    """

    def __init__(self, options: tuple[str, ...] = ()):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown de-identification option(s) {unknown}; known: {sorted(OPTIONS)}")
        self.options = tuple(name for name in OPTIONS if name in options)
        self.actions = dict(BASIC)
        for name in self.options:
            for action, keywords in OPTION_COLUMNS.get(name, {}).items():
                self.actions.update((tag_for_keyword(k), action) for k in keywords)
        if any(name.startswith("clean_") for name in self.options):
            self.actions.update((tag_for_keyword(k), "C") for k in CLEANED_TEXT)
        self.kept = frozenset(tag_for_keyword(k) for k in KEPT)

    def action(self, tag: int) -> str | None:
        if tag in self.actions:
            return self.actions[tag]
        group, element = tag >> 16, tag & 0xFFFF
        for g, e, g_mask, e_mask, action in REPEATING:
            if group & g_mask == g and element & e_mask == e:
                return action
        return None

    @property
    def codes(self) -> list[ProfileOption]:
        """The CID 7050 entries to record: the Basic Profile, then each option applied."""
        return [BASIC_PROFILE, *(OPTIONS[name] for name in self.options)]
