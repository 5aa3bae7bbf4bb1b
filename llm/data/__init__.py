"""The data layer: patient records in, task datasets out (docs/architecture.md).

* :mod:`~llm.data.schema` and :mod:`~llm.data.io`: the patient record, and
  reading and writing records files with ``read = used + rejected``.
* :mod:`llm.data.importers`: FHIR R4 and MIMIC-IV-Note into records.
* :mod:`llm.data.synth`: the reproducible synthetic cohort.
* :mod:`llm.data.deid`: de-identification (Presidio, offline), with
  :mod:`~llm.data.phi` and :mod:`~llm.data.sections`.
* :mod:`llm.data.tasks`: task renderers, records to chat examples;
  :mod:`~llm.data.build` and :mod:`~llm.data.assets` write the task datasets.
"""
