"""The DICOMweb (PS3.18) service of Readerboard: QIDO-RS search and WADO-RS retrieval."""
