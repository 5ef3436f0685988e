"""Security and governance: the audit trail (``audit``), PACS secrets (``secrets``), TLS contexts
(``tls``), signed resume state (``signing``) and process-wide settings (``settings``: key file,
audit log, umask). Submodules are imported on demand."""
