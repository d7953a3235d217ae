-- Notifications without a repository (platform-wide ones) cannot be kept under NOT NULL: they are deleted.
DELETE FROM "notifications" WHERE "repo_id" IS NULL;--> statement-breakpoint
ALTER TABLE "notifications" ALTER COLUMN "repo_id" SET NOT NULL;
