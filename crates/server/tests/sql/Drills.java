// The drill-down tables `conversations` and `lead_stages` seen by the PostgreSQL JDBC driver:
// DatabaseMetaData.getColumns with their types, and prepared queries with filters.
import java.sql.*;

public class Drills {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[2];
        try (Connection conn = DriverManager.getConnection(url, args[2], args[3])) {
            DatabaseMetaData meta = conn.getMetaData();
            for (String table : new String[] {"conversations", "lead_stages"}) {
                try (ResultSet rs = meta.getColumns(null, "public", table, "%")) {
                    while (rs.next()) {
                        System.out.println("column " + table + " " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                    }
                }
            }
            String conversations = "SELECT conversation_id, channel, opened_at FROM conversations"
                + " WHERE agent_id = ? AND opened_at >= ? AND opened_at < ?";
            try (PreparedStatement ps = conn.prepareStatement(conversations)) {
                ps.setString(1, "a1");
                ps.setString(2, "2026-03-01");
                ps.setString(3, "2026-04-01");
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        System.out.println("conversation " + rs.getString(1) + " " + rs.getString(2) + " " + rs.getTimestamp(3).toInstant());
                    }
                }
            }
            String stages = "SELECT event_id, contact_id, amount, at FROM lead_stages WHERE stage = ? AND campaign_id = ?";
            try (PreparedStatement ps = conn.prepareStatement(stages)) {
                ps.setString(1, "closed_won");
                ps.setString(2, "k2");
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        System.out.println("stage " + rs.getString(1) + " " + rs.getString(2) + " " + rs.getDouble(3) + " " + rs.getTimestamp(4).toInstant());
                    }
                }
            }
        }
    }
}
