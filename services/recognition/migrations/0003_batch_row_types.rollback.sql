DROP TYPE pair_since;
DROP TYPE person_theme_count;
DROP TYPE person_week;
DROP TYPE person_text;
DROP TYPE milestone_row;
DROP TYPE progress_row;
DROP TYPE thanks_row;
