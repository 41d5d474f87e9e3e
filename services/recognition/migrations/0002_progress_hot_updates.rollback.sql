ALTER TABLE progress RESET (fillfactor, autovacuum_vacuum_scale_factor);
ALTER TABLE theme_progress RESET (fillfactor);
