-- progress rows are rewritten on every batch that touches their person (thousands of times a
-- minute under ingest): with full pages no update could stay on its page (HOT), so each one
-- added an index entry and the upsert's conflict check walked ever more dead versions.
-- Room on each page keeps updates HOT and lets page pruning clean up without waiting for
-- autovacuum; vacuum also comes sooner. theme_progress counts are updated the same way.
-- depends: 0001_recognition_core
ALTER TABLE progress SET (fillfactor = 30, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE theme_progress SET (fillfactor = 70);
