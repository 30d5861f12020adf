enum DashboardPage { static let html = Array("<html></html>".utf8) }
