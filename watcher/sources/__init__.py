"""Sources fetch and normalise; no database, no email."""
