-- Notify `lethe_erasure_changed` on updates of a request only.
--
-- The channel wakes WatchErasure streams (server/change_hub.h). A watcher
-- subscribes first and then reads the request, and it can only know a
-- request's id after the insert committed, so the notification of an
-- insert never reached anyone: it cost every submission a trigger call, a
-- queue entry and a wake-up of every listening connection at commit.
DROP TRIGGER erasure_requests_notify ON erasure_requests;
CREATE TRIGGER erasure_requests_notify
  AFTER UPDATE ON erasure_requests
  FOR EACH ROW EXECUTE FUNCTION lethe_notify_erasure_change();
