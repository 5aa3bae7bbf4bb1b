"""Importers from clinical source formats into patient records.

* :func:`llm.data.importers.fhir.import_fhir`: FHIR R4 Bundles / NDJSON.
* :func:`llm.data.importers.mimic.import_mimic`: MIMIC-IV-Note CSVs with the
  MIMIC-IV hosp tables they join to.

Both write a records file that ``clinical-llm data validate`` accepts and
report ``read = used + rejected`` (field mapping tables: ``docs/importers.md``).
"""
