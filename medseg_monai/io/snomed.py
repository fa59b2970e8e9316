"""SNOMED CT codes of the segmented property (category, type, laterality) a DICOM SEG segment carries, by label name.

Names are matched exactly after normalisation (lower case, every run of other characters than letters and digits
one space: ``Kidney_Left`` -> ``kidney left``); no substring guessing, so a name that is not in
:data:`LABEL_CODES` gets the generic category and type *Tissue* and keeps its own text as the segment label,
never another structure's code. The codes are pydicom's ``codes.SCT`` entries (the DICOM content-mapping
resources), looked up by attribute name.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

__all__ = ["GENERIC", "LABEL_CODES", "PropertyCodes", "normalise_label", "property_codes"]

_ANATOMY = "AnatomicalStructure"
_TISSUE = "Tissue"
_ABNORMAL = "MorphologicallyAbnormalStructure"


@dataclasses.dataclass(frozen=True)
class PropertyCodes:
    """Attribute names in pydicom's ``codes.SCT`` of a segment's category, type and type modifier (laterality)."""

    category: str
    type: str
    modifier: str | None = None

    def codes(self) -> tuple[Any, Any, Any | None]:
        """The pydicom ``Code`` objects: ``(category, type, modifier or None)``."""
        from pydicom.sr.codedict import codes

        return (
            getattr(codes.SCT, self.category),
            getattr(codes.SCT, self.type),
            getattr(codes.SCT, self.modifier) if self.modifier else None,
        )


#: what a label name not in the table gets: category and type *Tissue* (SCT 85756007)
GENERIC = PropertyCodes(_TISSUE, _TISSUE)


#: SCT anatomical structures: code -> the label names that mean it
_ORGANS: dict[str, tuple[str, ...]] = {
    "Liver": ("liver",),
    "Spleen": ("spleen",),
    "Pancreas": ("pancreas",),
    "Heart": ("heart",),
    "Aorta": ("aorta",),
    "Prostate": ("prostate", "prostate gland"),
    "Brain": ("brain",),
    "Stomach": ("stomach",),
    "Gallbladder": ("gallbladder", "gall bladder"),
    "Bladder": ("bladder", "urinary bladder"),
    "Esophagus": ("esophagus", "oesophagus"),
    "Duodenum": ("duodenum",),
    "Colon": ("colon",),
    "Rectum": ("rectum",),
    "SmallIntestine": ("small intestine", "small bowel"),
    "Trachea": ("trachea",),
    "Thyroid": ("thyroid", "thyroid gland"),
    "Uterus": ("uterus",),
    "SpinalCord": ("spinal cord",),
    "InferiorVenaCava": ("inferior vena cava", "ivc"),
    "PortalVein": ("portal vein",),
    "HepaticVein": ("hepatic vein", "hepatic veins"),
    "PulmonaryArtery": ("pulmonary artery",),
    "BloodVessel": ("vessel", "vessels", "blood vessel"),
    "Kidney": ("kidney", "kidneys"),
    "Lung": ("lung", "lungs"),
    "AdrenalGland": ("adrenal gland", "adrenal glands"),
    "Hippocampus": (
        "hippocampus",
        "hippocampus anterior",
        "anterior hippocampus",
        "hippocampus posterior",
        "posterior hippocampus",
    ),
    "LeftAtrium": ("left atrium",),
    "RightAtrium": ("right atrium",),
    "LeftVentricle": ("left ventricle",),
    "RightVentricle": ("right ventricle",),
    "Cerebellum": ("cerebellum",),
    "BrainStem": ("brainstem", "brain stem"),
    "Eye": ("eye",),
    "ParotidGland": ("parotid", "parotid gland"),
    "Mandible": ("mandible",),
    "OpticNerve": ("optic nerve",),
    "Femur": ("femur",),
    "Vertebra": ("vertebra",),
    "Breast": ("breast",),
    "Ureter": ("ureter",),
    "Urethra": ("urethra",),
}

#: organs of two sides, also named with the side (``left kidney``, ``kidney l``): ``(code, name)``
_PAIRED = (("Kidney", "kidney"), ("Lung", "lung"), ("AdrenalGland", "adrenal gland"))

#: SCT tissues: code -> label names
_TISSUES: dict[str, tuple[str, ...]] = {
    "Bone": ("bone",),
    "Muscle": ("muscle",),
    "Fat": ("fat",),
    "Skin": ("skin",),
    "WhiteMatter": ("white matter",),
    "GrayMatter": ("gray matter", "grey matter"),
}

#: SCT morphologically abnormal structures: code -> label names
_ABNORMALITIES: dict[str, tuple[str, ...]] = {
    "Neoplasm": ("tumour", "tumor", "tumours", "tumors", "neoplasm"),
    "Lesion": ("lesion", "lesions"),
    "Mass": ("mass",),
    "Cyst": ("cyst", "cysts"),
    "Nodule": ("nodule", "nodules"),
    "Edema": ("edema", "oedema"),
    "Necrosis": ("necrosis",),
    "Hemorrhage": ("hemorrhage", "haemorrhage"),
}


def _entries() -> dict[str, PropertyCodes]:
    table: dict[str, PropertyCodes] = {}

    def add(kind: str, code: str, *names: str, modifier: str | None = None) -> None:
        for name in names:
            table[name] = PropertyCodes(kind, code, modifier)

    for code, names in _ORGANS.items():
        add(_ANATOMY, code, *names)
    for code, stem in _PAIRED:
        add(_ANATOMY, code, f"left {stem}", f"{stem} left", f"{stem} l", modifier="Left")
        add(_ANATOMY, code, f"right {stem}", f"{stem} right", f"{stem} r", modifier="Right")
    for code, names in _TISSUES.items():
        add(_TISSUE, code, *names)
    for code, names in _ABNORMALITIES.items():
        add(_ABNORMAL, code, *names)
    return table


#: normalised label name -> its codes (see :func:`normalise_label`)
LABEL_CODES: dict[str, PropertyCodes] = _entries()


def normalise_label(name: str) -> str:
    """``"Kidney_Left"`` -> ``"kidney left"``: lower case, each run of characters other than letters and digits one
    space."""
    return " ".join(re.split(r"[^0-9a-z]+", str(name).lower())).strip()


def property_codes(name: str) -> PropertyCodes:
    """The codes of label ``name`` (exact match on the normalised name), else :data:`GENERIC`."""
    return LABEL_CODES.get(normalise_label(name), GENERIC)
