"""The training data: reading name data sets from files, holding them in memory, splitting and
describing them, and fetching the original sets. No torch here; nothing in this folder imports
training, inference or the CLI. Import from the modules themselves (this file re-exports nothing):

- ``loader``: ``load`` (a folder of ``<Label>.txt`` files, a zip, TSV, CSV or lines) and ``data_sha256``
- ``records``: the data set in memory (``NameRecord``, ``NameDataset``, ``RecordView``, ``DataError``)
- ``scan``: a file's lines as ids of their distinct raw texts (the byte scanner under ``load``)
- ``zipsafe``: zip archives read safely (member names and the size cap)
- ``split``: grouped, stratified splits and folds of a data set
- ``run_parts``: which lines a run trains, validates and tests on, and how a model card says so
- ``stats``: what a data set holds (``namemodels data stats``), as text, JSON and a plot
- ``births``: a by-year births file summed over a span of years (``namemodels data births``)
- ``download``: the original data sets from their official addresses (``namemodels data download``)
"""
