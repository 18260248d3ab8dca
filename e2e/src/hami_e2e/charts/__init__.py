"""The Helm charts (``charts/hami``) under test: the real helm binary against them
(`helm`), their schemas kept in step with the settings models (`schemas`), and the
services run from an installed release with its ServiceAccounts' tokens (`release`)."""
