"""ClinicalTrials.gov: the API v2 client, the normalised and pruned record, the diff into change
kinds, one poll of one watch (pipeline), a study's stored history, and preview.

May import: the shared core (config, model, errors, http, matching) and store. Never literature,
mail, service, daemon, web or cli.
"""
