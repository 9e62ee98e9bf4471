"""The science: method plugins (thin specs over shared components) reached through `harness.registries`."""
