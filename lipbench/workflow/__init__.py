"""The Snakemake workflow's side of the package: reading and checking configuration files, the
command line of each rule built from the configuration, and the code hash that reruns a rule when
the code it runs changes."""
