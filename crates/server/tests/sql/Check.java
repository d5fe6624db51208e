// The SQL endpoint seen by the PostgreSQL JDBC driver, as Metabase and Tableau use it:
// DatabaseMetaData.getTables and getColumns, and a prepared query. Prints one line per fact.
import java.sql.*;

public class Check {
    public static void main(String[] args) throws Exception {
        // A fifth argument is appended to the URL (e.g. ssl=true&sslfactory=...).
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[2] + (args.length > 4 ? "?" + args[4] : "");
        try (Connection conn = DriverManager.getConnection(url, args[2], args[3])) {
            DatabaseMetaData meta = conn.getMetaData();
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_NAME"));
            }
            try (ResultSet rs = meta.getColumns(null, "public", "call_metrics", "%")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
            String sql = "SELECT agent, total_calls FROM call_metrics WHERE agent = ? AND time >= ? AND time < ? GROUP BY agent";
            try (PreparedStatement ps = conn.prepareStatement(sql)) {
                ps.setString(1, "a1");
                ps.setString(2, "2026-03-01");
                ps.setString(3, "2026-04-01");
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) System.out.println("row " + rs.getString(1) + " " + rs.getLong(2));
                }
            }
        }
    }
}
