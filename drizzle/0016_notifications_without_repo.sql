-- A platform-wide notification (a data subject request's deadline reminder to a platform admin) belongs to no
-- repository: repo_id may be null; such a row is addressed to one person (user_id).
ALTER TABLE "notifications" ALTER COLUMN "repo_id" DROP NOT NULL;
