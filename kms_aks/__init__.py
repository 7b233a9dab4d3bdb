"""Offline tooling for the kms-aks Pulumi program: config, mock engine, policy client, plan and guard."""
