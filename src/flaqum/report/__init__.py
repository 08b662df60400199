"""Feedback reports: one per hospital per wave, and the consortium report for the research team.

The package computes every number, table and figure; the Quarto template in ``workflow/report``
only lays them out. The flow of one hospital report:

1. ``data.WaveResults``: the wave's results as DataFrames (read by ``data.load_wave``).
2. ``confidentiality.hospital_view``: everything the hospital may see, already filtered to it,
   with every group below ``min_group_size`` blanked (and complementary suppression applied).
3. ``content.hospital_content``: the sections (text, tables, figures as SVG) built from the view.
4. ``render.render_report``: the template executed with the content, by Quarto or by the Jupyter
   toolchain, then scanned for other hospitals' identifiers before it is moved into place.

Names and labels (hospitals, teams, scales, items) are free text from raw files and codebooks:
``escape`` cleans them and escapes them for the place where they are written (Markdown, HTML,
SVG), so that a name shows literally and never becomes markup.
"""
