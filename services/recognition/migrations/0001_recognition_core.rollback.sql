DROP TABLE IF EXISTS milestones, theme_progress, help_weeks, helped_teams, helped_people,
    progress, thanks, offers, asks, people;
