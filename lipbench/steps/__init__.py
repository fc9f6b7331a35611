"""The pipeline steps: one module per ``lipbench`` command, which both the command line and the
workflow's rules run (each rule is one ``lipbench <step>`` call)."""
