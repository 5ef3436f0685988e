"""Study manifests (``manifest``), their writers for dataset layouts (``manifest_writers``; public
releases as downloaded in ``layouts``), SYNTHETIC
phantom studies (``phantom``) and the model-input data set (``dataset``); see ``docs/data.md``.

Import from the submodules: ``dataset`` pulls in torch and the image pipeline, the others do not.
"""
