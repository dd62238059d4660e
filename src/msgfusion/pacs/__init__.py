"""The PACS client: find studies over DICOMweb, fuse a study's MR with its CT/PET/SPECT series,
store the result as a new series of the study. A client of the public API, like the CLI."""

from msgfusion.pacs.client import PacsClient, SeriesInfo, StudyInfo
from msgfusion.pacs.fusion import StoredFusion, fuse_study, pick_series

__all__ = ["PacsClient", "SeriesInfo", "StoredFusion", "StudyInfo", "fuse_study", "pick_series"]
