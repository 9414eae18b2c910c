"""The command line (`trialwatch`): operating commands (operating.py), inspecting commands
(inspecting.py) and their shared helpers (shared.py). With web/, the only place that chooses
implementations (transport, HTTP session, database engine).

May import anything. Nothing imports it but the entry point (watcher.__main__).
"""
