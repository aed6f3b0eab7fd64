"""The ingestion gate (IG): the writer boundary of the traffic topic."""
