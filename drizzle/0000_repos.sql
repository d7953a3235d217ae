CREATE TYPE "public"."repo_visibility" AS ENUM('public', 'private');--> statement-breakpoint
CREATE TABLE "repos" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"gh_id" bigint,
	"name" text NOT NULL,
	"owner" text NOT NULL,
	"default_branch" text DEFAULT 'main' NOT NULL,
	"visibility" "repo_visibility" DEFAULT 'public' NOT NULL,
	"config" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "repos_gh_id_unique" UNIQUE("gh_id"),
	CONSTRAINT "repos_owner_name_unique" UNIQUE("owner","name")
);
