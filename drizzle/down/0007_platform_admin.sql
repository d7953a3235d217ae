ALTER TABLE "users" DROP COLUMN "is_platform_admin";
